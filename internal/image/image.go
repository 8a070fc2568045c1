// Package image writes container images without a container engine: a
// docker-save style tar (manifest.json, the image config, one layer.tar)
// that `ctr -n k8s.io images import` (containerd) and `docker load` accept,
// built from files named one by one. It is how the project makes its
// Kubernetes images (cmd/xvr-image, scripts/images.sh): no Dockerfile, no
// registry, no daemon (docs/decisions/0007-images-without-docker.md).
//
// An Image is filled with Add* calls, then written once with Write. The
// archive is reproducible: entries are sorted, owned by root and dated
// Epoch, so the same files give the same image ID. AddHost copies a
// binary of this machine together with the shared libraries ldd says it
// loads, which is how Debian's iptables and ip get into an image.
//
// Importers: cmd/xvr-image and tests.
package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Epoch is the modification time of every entry and the image's creation
// time, so that archives are reproducible.
var Epoch = time.Unix(0, 0).UTC()

// Config is the part of the OCI image config a pod's container starts
// from; Kubernetes' command and args replace Entrypoint and Cmd.
type Config struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	// Env entries are KEY=VALUE. Write adds a PATH when Env has none.
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
	// User is a uid (or uid:gid); empty is root.
	User   string            `json:"User,omitempty"`
	Labels map[string]string `json:"Labels,omitempty"`
}

// DefaultPath is the PATH an image gets when its Config sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// entry is one file system object of the layer.
type entry struct {
	typ    byte // tar.TypeReg, TypeDir or TypeSymlink
	mode   int64
	data   []byte // TypeReg
	src    string // TypeReg read from this host file at Write, if data is nil
	size   int64  // of src
	target string // TypeSymlink
}

// Image is one single-layer image being assembled; the zero value is not
// usable, use New.
type Image struct {
	// Ref is the name the image is imported under, e.g.
	// "xvr.local/pause:dev". containerd normalises a name without a
	// domain to docker.io/library/..., so give one.
	Ref    string
	Config Config

	entries map[string]*entry
}

// New returns an empty image named ref with the usual top-level
// directories (/dev, /etc, /proc, /sys, /tmp, /run, /var), which the
// runtime mounts over or writes into (/etc/hosts, /etc/resolv.conf).
func New(ref string, cfg Config) *Image {
	im := &Image{Ref: ref, Config: cfg, entries: map[string]*entry{}}
	for _, d := range []string{"dev", "etc", "proc", "sys", "run", "var"} {
		im.AddDir(d, 0o755)
	}
	im.AddDir("tmp", fs.ModeSticky|0o777)
	return im
}

// clean turns p into the archive's form: relative, slash-separated, no
// dots; it rejects a path outside the root.
func clean(p string) (string, error) {
	c := path.Clean("/" + p)
	if c == "/" {
		return "", fmt.Errorf("image: %q: not a file path", p)
	}
	return strings.TrimPrefix(c, "/"), nil
}

// parents adds the directories above p that are not there yet.
func (im *Image) parents(p string) {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := im.entries[d]; !ok {
			im.entries[d] = &entry{typ: tar.TypeDir, mode: 0o755}
		}
	}
}

func (im *Image) put(p string, e *entry) error {
	c, err := clean(p)
	if err != nil {
		return err
	}
	im.parents(c)
	im.entries[c] = e
	return nil
}

// AddDir adds the directory p with mode's permission and sticky bits
// (parents get 0755).
func (im *Image) AddDir(p string, mode fs.FileMode) error {
	m := int64(mode.Perm())
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return im.put(p, &entry{typ: tar.TypeDir, mode: m})
}

// AddBytes adds a regular file p holding data.
func (im *Image) AddBytes(p string, data []byte, mode fs.FileMode) error {
	if data == nil {
		data = []byte{}
	}
	return im.put(p, &entry{typ: tar.TypeReg, mode: int64(mode.Perm()), data: data})
}

// AddFile adds the host file src as p, with src's permission bits. src
// is read when the image is written; a symlink is followed.
func (im *Image) AddFile(p, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("image: %s: not a regular file", src)
	}
	return im.put(p, &entry{typ: tar.TypeReg, mode: int64(fi.Mode().Perm()), src: src, size: fi.Size()})
}

// AddSymlink adds p as a symbolic link to target.
func (im *Image) AddSymlink(p, target string) error {
	return im.put(p, &entry{typ: tar.TypeSymlink, mode: 0o777, target: target})
}

// Paths lists the image's entries, sorted, in the archive's relative form.
func (im *Image) Paths() []string {
	out := make([]string, 0, len(im.entries))
	for p := range im.entries {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// layer writes the layer tar to w.
func (im *Image) layer(w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, p := range im.Paths() {
		e := im.entries[p]
		h := &tar.Header{Typeflag: e.typ, Name: p, Mode: e.mode, ModTime: Epoch, Format: tar.FormatPAX}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink:
			h.Linkname = e.target
		case tar.TypeReg:
			h.Size = int64(len(e.data))
			if e.data == nil {
				h.Size = e.size
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("image: layer: %s: %w", p, err)
		}
		if e.typ != tar.TypeReg {
			continue
		}
		if err := e.copyTo(tw); err != nil {
			return fmt.Errorf("image: layer: %s: %w", p, err)
		}
	}
	return tw.Close()
}

// copyTo writes the file's content, which must still be the size it was
// when added.
func (e *entry) copyTo(w io.Writer) error {
	if e.data != nil {
		_, err := w.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, e.size))
	if err == nil && n != e.size {
		err = fmt.Errorf("%s shrank from %d to %d bytes since it was added", e.src, e.size, n)
	}
	return err
}

// ociConfig is the image config (application/vnd.oci.image.config.v1+json,
// which docker's is the same as).
type ociConfig struct {
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Created      time.Time `json:"created"`
	Config       Config    `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// manifestEntry is one image of a docker-save manifest.json.
type manifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// Write writes the image as a docker-save archive to w and returns its
// ID (the sha256 of its config, as `ctr images ls` and `crictl images`
// show it). The layer is built in memory: images here are tens of MB.
func (im *Image) Write(w io.Writer) (id string, err error) {
	if im.Ref == "" {
		return "", fmt.Errorf("image: no name")
	}
	var layer bytes.Buffer
	if err := im.layer(&layer); err != nil {
		return "", err
	}
	diff := sha256.Sum256(layer.Bytes())
	diffHex := hex.EncodeToString(diff[:])

	cfg := ociConfig{Architecture: runtime.GOARCH, OS: "linux", Created: Epoch, Config: im.Config}
	if !hasPath(cfg.Config.Env) {
		cfg.Config.Env = append([]string{DefaultPath}, cfg.Config.Env...)
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{"sha256:" + diffHex}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("image: config: %w", err)
	}
	cfgSum := sha256.Sum256(cfgJSON)
	cfgHex := hex.EncodeToString(cfgSum[:])

	layerName := diffHex + "/layer.tar"
	manifest, err := json.Marshal([]manifestEntry{{Config: cfgHex + ".json", RepoTags: []string{im.Ref}, Layers: []string{layerName}}})
	if err != nil {
		return "", fmt.Errorf("image: manifest: %w", err)
	}

	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{
		{cfgHex + ".json", cfgJSON},
		{layerName, layer.Bytes()},
		{"manifest.json", manifest},
	}
	if err := writeDir(tw, diffHex+"/"); err != nil {
		return "", err
	}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: Epoch}
		if err := tw.WriteHeader(h); err != nil {
			return "", fmt.Errorf("image: archive: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", fmt.Errorf("image: archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("image: archive: %w", err)
	}
	return "sha256:" + cfgHex, nil
}

func writeDir(tw *tar.Writer, name string) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: Epoch}); err != nil {
		return fmt.Errorf("image: archive: %w", err)
	}
	return nil
}

func hasPath(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			return true
		}
	}
	return false
}

// WriteFile writes the archive to the file name (through a temporary file
// renamed over it, so a failed write leaves no half archive) and returns
// the image ID.
func (im *Image) WriteFile(name string) (string, error) {
	f, err := os.CreateTemp(path.Dir(name), ".image-*.tar")
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	id, err := im.Write(f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("image: %w", cerr)
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return id, nil
}
