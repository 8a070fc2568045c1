package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/xvr-project/xvr/cni"
)

// installOptions are the flags of `xvr-cni install`.
type installOptions struct {
	binDir, confDir string
	conf            string   // the conflist to install
	names           []string // the plugin's names in binDir
}

// install is `xvr-cni install`: the node DaemonSet's init container
// (deploy/kubernetes/node.yaml; the images have no shell) copies this
// program into the CNI bin directory under each name and the conflist into
// the config directory. Each file is written beside its target and renamed
// over it, so the runtime never runs a half-copied plugin or reads half a
// config. self is the program to copy (os.Executable). It returns the exit
// code.
func install(args []string, self string, stdout, stderr io.Writer) int {
	o, err := parseInstall(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.run(self, stdout); err != nil {
		fmt.Fprintf(stderr, "xvr-cni install: %v\n", err)
		return 1
	}
	return 0
}

func parseInstall(args []string, stderr io.Writer) (*installOptions, error) {
	fs := flag.NewFlagSet("xvr-cni install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &installOptions{}
	names := fs.String("names", "xvr,contrail-k8s-cni", "comma-separated names to install the plugin as")
	fs.StringVar(&o.binDir, "bin-dir", "/opt/cni/bin", "the runtime's CNI bin directory")
	fs.StringVar(&o.confDir, "conf-dir", "/etc/cni/net.d", "the runtime's CNI config directory")
	fs.StringVar(&o.conf, "conf", "", "the conflist to install into -conf-dir under its own file name (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: xvr-cni install -conf FILE [-bin-dir DIR] [-conf-dir DIR] [-names xvr,contrail-k8s-cni]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 || o.conf == "" {
		fs.Usage()
		return nil, errors.New("bad arguments")
	}
	for _, n := range strings.Split(*names, ",") {
		if n = strings.TrimSpace(n); n != "" {
			if strings.ContainsRune(n, '/') {
				fmt.Fprintf(stderr, "xvr-cni install: -names: %q is not a file name\n", n)
				return nil, errors.New("bad arguments")
			}
			o.names = append(o.names, n)
		}
	}
	if len(o.names) == 0 {
		fmt.Fprintln(stderr, "xvr-cni install: -names is empty")
		return nil, errors.New("bad arguments")
	}
	return o, nil
}

// run checks the conflist, then installs the binaries and the conflist
// (last, so a runtime that sees the config finds the plugin).
func (o *installOptions) run(self string, stdout io.Writer) error {
	conf, err := os.ReadFile(o.conf)
	if err != nil {
		return err
	}
	if err := checkConfList(conf, o.names); err != nil {
		return fmt.Errorf("%s: %w", o.conf, err)
	}
	prog, err := os.ReadFile(self)
	if err != nil {
		return fmt.Errorf("reading the plugin: %w", err)
	}
	for _, n := range o.names {
		if err := writeAtomic(filepath.Join(o.binDir, n), prog, 0o755); err != nil {
			return err
		}
	}
	dst := filepath.Join(o.confDir, filepath.Base(o.conf))
	if err := writeAtomic(dst, conf, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "xvr-cni %s installed: %s in %s, %s\n", version, strings.Join(o.names, ", "), o.binDir, dst)
	return nil
}

// checkConfList refuses a conflist the runtime could not load, one whose
// first plugin is not one of names, or a plugin config xvr-cni rejects.
func checkConfList(data []byte, names []string) error {
	l, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return err
	}
	if len(l.Plugins) == 0 {
		return errors.New("no plugins")
	}
	first := l.Plugins[0]
	if !slices.Contains(names, first.Network.Type) {
		return fmt.Errorf("first plugin is %q, not one of %v", first.Network.Type, names)
	}
	if _, err := cni.ParseConfig(first.Bytes); err != nil {
		return err
	}
	return nil
}

// writeAtomic writes data to a hidden temporary file in path's directory
// (created if missing) and renames it over path.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp) //nolint:errcheck // best effort; the error below is what matters
		return fmt.Errorf("installing %s: %w", path, err)
	}
	return nil
}
