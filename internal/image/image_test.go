package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// readTar returns the archive's entries by name, with their contents.
func readTar(t *testing.T, data []byte) (map[string]*tar.Header, map[string][]byte, []string) {
	t.Helper()
	hdrs, files := map[string]*tar.Header{}, map[string][]byte{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, files, order
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name], files[h.Name] = h, b
		order = append(order, h.Name)
	}
}

func TestWrite(t *testing.T) {
	src := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(src, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	im := New("xvr.local/test:dev", Config{Entrypoint: []string{"/usr/local/bin/app"}, Env: []string{"A=b"}, User: "65534"})
	for _, err := range []error{
		im.AddFile("/usr/local/bin/app", src),
		im.AddBytes("etc/motd", []byte("hi\n"), 0o644),
		im.AddSymlink("/bin/app", "../usr/local/bin/app"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := im.AddFile("/x", "/nonexistent"); err == nil {
		t.Error("AddFile of a missing file: no error")
	}
	if err := im.AddBytes("/", nil, 0o644); err == nil {
		t.Error("AddBytes of /: no error")
	}
	var buf bytes.Buffer
	id, err := im.Write(&buf)
	if err != nil {
		t.Fatal(err)
	}
	hdrs, files, _ := readTar(t, buf.Bytes())
	var manifest []manifestEntry
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || !reflect.DeepEqual(manifest[0].RepoTags, []string{"xvr.local/test:dev"}) || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json = %s", files["manifest.json"])
	}
	cfgJSON := files[manifest[0].Config]
	sum := sha256.Sum256(cfgJSON)
	if want := "sha256:" + hex.EncodeToString(sum[:]); id != want || manifest[0].Config != hex.EncodeToString(sum[:])+".json" {
		t.Errorf("id %s, config %s; want %s", id, manifest[0].Config, want)
	}
	var cfg ociConfig
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	layer := files[manifest[0].Layers[0]]
	lsum := sha256.Sum256(layer)
	if got := cfg.RootFS.DiffIDs; len(got) != 1 || got[0] != "sha256:"+hex.EncodeToString(lsum[:]) {
		t.Errorf("diff_ids %v, layer sha256 %x", got, lsum)
	}
	if cfg.OS != "linux" || cfg.Config.User != "65534" || !reflect.DeepEqual(cfg.Config.Env, []string{DefaultPath, "A=b"}) {
		t.Errorf("config %+v", cfg)
	}
	if _, ok := hdrs[strings.TrimSuffix(manifest[0].Layers[0], "layer.tar")]; !ok {
		t.Error("no directory entry for the layer")
	}

	lh, lf, order := readTar(t, layer)
	if !sortedStrings(order) {
		t.Errorf("layer entries not sorted: %v", order)
	}
	for name, want := range map[string]byte{
		"usr/": tar.TypeDir, "usr/local/": tar.TypeDir, "usr/local/bin/": tar.TypeDir, "bin/": tar.TypeDir,
		"usr/local/bin/app": tar.TypeReg, "etc/motd": tar.TypeReg, "bin/app": tar.TypeSymlink,
		"tmp/": tar.TypeDir, "proc/": tar.TypeDir, "dev/": tar.TypeDir,
	} {
		h, ok := lh[name]
		if !ok {
			t.Errorf("layer has no %s", name)
			continue
		}
		if h.Typeflag != want || h.Uid != 0 || !h.ModTime.Equal(Epoch) {
			t.Errorf("%s: type %c uid %d mtime %v", name, h.Typeflag, h.Uid, h.ModTime)
		}
	}
	if lh["tmp/"].Mode != 0o1777 || lh["usr/local/bin/app"].Mode != 0o755 || lh["bin/app"].Linkname != "../usr/local/bin/app" {
		t.Errorf("tmp mode %o, app mode %o, link %q", lh["tmp/"].Mode, lh["usr/local/bin/app"].Mode, lh["bin/app"].Linkname)
	}
	if string(lf["usr/local/bin/app"]) != "#!/bin/true\n" || string(lf["etc/motd"]) != "hi\n" {
		t.Error("file contents differ")
	}

	var again bytes.Buffer
	if id2, err := im.Write(&again); err != nil || id2 != id || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("second Write: id %s, err %v, same bytes %v; want a reproducible archive", id2, err, bytes.Equal(again.Bytes(), buf.Bytes()))
	}
}

func sortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] > s[i] {
			return false
		}
	}
	return true
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "a.tar")
	if _, err := New("xvr.local/empty:dev", Config{}).WriteFile(name); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "a.tar" {
		t.Errorf("dir holds %v, want only a.tar", ents)
	}
	if _, err := New("", Config{}).WriteFile(filepath.Join(dir, "b.tar")); err == nil {
		t.Error("an image without a name was written")
	}
}

func TestParseLdd(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007ffd)
	libxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x00007f9c)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9c)
	/lib64/ld-linux-x86-64.so.2 (0x00007f9c)
`
	got, err := parseLdd(out)
	want := []string{"/lib/x86_64-linux-gnu/libxtables.so.12", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseLdd = %v, %v; want %v", got, err, want)
	}
	if _, err := parseLdd("\tlibfoo.so.1 => not found\n"); err == nil {
		t.Error("a missing library: no error")
	}
}

// TestAddHost copies a host symlink chain: a link in a directory on the
// way and a link to the file, then the file.
func TestAddHost(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr", "lib", "real"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"lib", "usr/lib"}, {"usr/lib/alias", "real"}} {
		if err := os.Symlink(l[1], filepath.Join(root, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	im := New("xvr.local/host:dev", Config{})
	if err := im.AddHost(filepath.Join(root, "lib", "alias")); err != nil {
		t.Fatal(err)
	}
	rel := strings.TrimPrefix(root, "/")
	for p, want := range map[string]byte{rel + "/lib": tar.TypeSymlink, rel + "/usr/lib/alias": tar.TypeSymlink, rel + "/usr/lib/real": tar.TypeReg} {
		if e, ok := im.entries[p]; !ok || e.typ != want {
			t.Errorf("%s: %+v, want type %c", p, e, want)
		}
	}
	if im.entries[rel+"/lib"].target != "usr/lib" {
		t.Errorf("lib -> %q", im.entries[rel+"/lib"].target)
	}
}

// TestAddHostELF brings a real dynamically linked program with its
// libraries.
func TestAddHostELF(t *testing.T) {
	const prog = "/usr/bin/ls"
	if _, err := os.Stat(prog); err != nil {
		t.Skip(err)
	}
	im := New("xvr.local/ls:dev", Config{})
	if err := im.AddHost(prog); err != nil {
		t.Fatal(err)
	}
	var libc bool
	for _, p := range im.Paths() {
		if strings.HasSuffix(p, "/libc.so.6") {
			libc = true
		}
	}
	if !libc {
		t.Errorf("no libc.so.6 among %v", im.Paths())
	}
	if e := im.entries["usr/bin/ls"]; e == nil || e.typ != tar.TypeReg || fs.FileMode(e.mode)&0o111 == 0 {
		t.Errorf("usr/bin/ls: %+v", e)
	}
}
