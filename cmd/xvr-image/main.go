// Command xvr-image writes a container image as a docker-save archive
// that `ctr -n k8s.io images import` loads, from files named on the
// command line, without a container engine (package internal/image).
// scripts/images.sh uses it for the project's Kubernetes images.
//
//	xvr-image -o pause.tar -ref xvr.local/pause:dev \
//	    -file /pause=bin/pause -entrypoint /pause
//	xvr-image -o node.tar -ref xvr.local/xvr-node:dev \
//	    -file /usr/local/bin/xvrd=bin/xvrd -host /usr/sbin/iptables \
//	    -host-tree /usr/lib/x86_64-linux-gnu/xtables -entrypoint /usr/local/bin/xvrd
//
// It prints the image ID (sha256 of its config).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/xvr-project/xvr/internal/image"
)

var version = "dev"

// list is a flag given once per element.
type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "xvr-image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("xvr-image", flag.ContinueOnError)
	var (
		out     = fl.String("o", "", "write the archive to this `file` (required)")
		ref     = fl.String("ref", "", "the image's `name`, with a domain, e.g. xvr.local/pause:dev (required)")
		user    = fl.String("user", "", "the `uid[:gid]` the container runs as (default root)")
		workdir = fl.String("workdir", "", "the working `dir`ectory")
		showVer = fl.Bool("version", false, "print the version and exit")

		entrypoint, cmd, env, files, hosts, trees, links, labels list
	)
	fl.Var(&entrypoint, "entrypoint", "one `arg`ument of the entrypoint (repeat, in order)")
	fl.Var(&cmd, "cmd", "one `arg`ument of the default command (repeat, in order)")
	fl.Var(&env, "env", "an environment `KEY=VALUE` (repeat)")
	fl.Var(&files, "file", "`DEST=SRC`: the host file SRC as DEST in the image (repeat)")
	fl.Var(&hosts, "host", "a host `path` at the same path, with its links and shared libraries (repeat)")
	fl.Var(&trees, "host-tree", "every file under a host `dir`, like -host (repeat)")
	fl.Var(&links, "symlink", "`PATH=TARGET`: a symbolic link (repeat)")
	fl.Var(&labels, "label", "an image label `KEY=VALUE` (repeat)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *showVer {
		fmt.Println(version)
		return nil
	}
	if *out == "" || *ref == "" || fl.NArg() > 0 {
		return fmt.Errorf("usage: xvr-image -o FILE -ref NAME [flags] (see -h)")
	}
	cfg := image.Config{Entrypoint: entrypoint, Cmd: cmd, Env: env, User: *user, WorkingDir: *workdir}
	for _, kv := range labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("-label %q: want KEY=VALUE", kv)
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		cfg.Labels[k] = v
	}
	im := image.New(*ref, cfg)
	if err := add(im, files, hosts, trees, links); err != nil {
		return err
	}
	id, err := im.WriteFile(*out)
	if err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}

func add(im *image.Image, files, hosts, trees, links []string) error {
	for _, f := range files {
		dst, src, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-file %q: want DEST=SRC", f)
		}
		if err := im.AddFile(dst, src); err != nil {
			return err
		}
	}
	for _, h := range hosts {
		if err := im.AddHost(h); err != nil {
			return err
		}
	}
	for _, d := range trees {
		if err := im.AddHostTree(d); err != nil {
			return err
		}
	}
	for _, l := range links {
		p, target, ok := strings.Cut(l, "=")
		if !ok {
			return fmt.Errorf("-symlink %q: want PATH=TARGET", l)
		}
		if err := im.AddSymlink(p, target); err != nil {
			return err
		}
	}
	return nil
}
