package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testConf = `{
  "cniVersion": "1.0.0",
  "name": "xvr",
  "plugins": [{"type": "xvr", "socket": "/run/xvr/xvrd.sock"}]
}`

// installFixture is a fake plugin binary and a conflist in a temp dir,
// and empty bin and conf directories (not yet created).
func installFixture(t *testing.T, conf string) (self, confFile, binDir, confDir string) {
	t.Helper()
	dir := t.TempDir()
	self = filepath.Join(dir, "xvr-cni")
	if err := os.WriteFile(self, []byte("#!plugin\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	confFile = filepath.Join(dir, "10-xvr.conflist")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return self, confFile, filepath.Join(dir, "host", "opt", "cni", "bin"), filepath.Join(dir, "host", "etc", "cni", "net.d")
}

// TestInstall: both names and the conflist land with their modes and
// contents, directories are created, a second run (a restarted init
// container) replaces them and leaves no temporary file.
func TestInstall(t *testing.T) {
	self, confFile, binDir, confDir := installFixture(t, testConf)
	args := []string{"-bin-dir", binDir, "-conf-dir", confDir, "-conf", confFile}
	for run := 0; run < 2; run++ {
		var out, errOut bytes.Buffer
		if code := install(args, self, &out, &errOut); code != 0 {
			t.Fatalf("run %d: exit %d: %s", run, code, errOut.String())
		}
		if !strings.Contains(out.String(), "installed") {
			t.Errorf("run %d: output %q", run, out.String())
		}
	}
	for _, f := range []struct {
		path, want string
		mode       os.FileMode
	}{
		{filepath.Join(binDir, "xvr"), "#!plugin\n", 0o755},
		{filepath.Join(binDir, "contrail-k8s-cni"), "#!plugin\n", 0o755},
		{filepath.Join(confDir, "10-xvr.conflist"), testConf, 0o644},
	} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
		}
		if got, _ := os.ReadFile(f.path); string(got) != f.want {
			t.Errorf("%s: %q, want %q", f.path, got, f.want)
		}
	}
	for _, d := range []string{binDir, confDir} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temporary file %s left in %s", e.Name(), d)
			}
		}
	}
}

// TestInstallRefuses: a conflist the runtime or the plugin would reject,
// and bad flags, install nothing.
func TestInstallRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		args       []string
		code       int
	}{
		{"not json", "{", nil, 1},
		{"no plugins", `{"cniVersion":"1.0.0","name":"xvr","plugins":[]}`, nil, 1},
		{"another plugin", `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"}]}`, nil, 1},
		{"bad plugin config", `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"xvr","mtu":-1}]}`, nil, 1},
		{"name with a slash", testConf, []string{"-names", "../xvr"}, 2},
		{"no names", testConf, []string{"-names", ","}, 2},
		{"stray argument", testConf, []string{"extra"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			self, confFile, binDir, confDir := installFixture(t, tc.conf)
			args := append([]string{"-bin-dir", binDir, "-conf-dir", confDir, "-conf", confFile}, tc.args...)
			var out, errOut bytes.Buffer
			if code := install(args, self, &out, &errOut); code != tc.code {
				t.Fatalf("exit %d, want %d (%s)", code, tc.code, errOut.String())
			}
			for _, d := range []string{binDir, confDir} {
				if ents, err := os.ReadDir(d); err == nil && len(ents) > 0 {
					t.Errorf("%s holds %d files after a refused install", d, len(ents))
				}
			}
		})
	}
	var errOut bytes.Buffer
	if code := install(nil, "/nonexistent", &bytes.Buffer{}, &errOut); code != 2 {
		t.Errorf("without -conf: exit %d, want 2", code)
	}
}
