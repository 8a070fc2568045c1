package image

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// maxLinks bounds the symbolic links followed for one path (as the
// kernel's ELOOP does).
const maxLinks = 40

// AddHost copies the host path p into the image at the same path: every
// symbolic link met on the way (in a directory, as Debian's /lib -> usr/lib,
// or the file itself, as /usr/sbin/iptables -> /etc/alternatives/iptables)
// becomes the same link in the image, and the file it ends at a regular
// file. A dynamically linked ELF file brings the shared libraries and the
// interpreter ldd(1) lists for it, added the same way; a static one
// brings nothing. AddHost of a path already there does nothing more.
func (im *Image) AddHost(p string) error {
	real, err := im.addHostPath(p)
	if err != nil {
		return err
	}
	return im.addLibs(real)
}

// AddHostTree is AddHost for every regular file and symbolic link under
// the host directory dir (e.g. iptables' extensions,
// /usr/lib/x86_64-linux-gnu/xtables, which it dlopens, so ldd does not
// list them).
func (im *Image) AddHostTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		if d.IsDir() {
			return nil
		}
		return im.AddHost(p)
	})
}

// addHostPath adds p (absolute on the host) with the links on its way and
// returns the host path of the regular file it ends at.
func (im *Image) addHostPath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("image: %s: want an absolute host path", p)
	}
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	cur := "/"
	for links := 0; len(rest) > 0; {
		next := path.Join(cur, rest[0])
		fi, err := os.Lstat(next)
		if err != nil {
			return "", fmt.Errorf("image: %w", err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur, rest = next, rest[1:]
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("image: %s: too many symbolic links", p)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", fmt.Errorf("image: %w", err)
		}
		if err := im.AddSymlink(next, target); err != nil {
			return "", err
		}
		if !path.IsAbs(target) {
			target = path.Join(cur, target)
		}
		// Start again from the root with the link replaced by its target.
		rest = append(strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/"), rest[1:]...)
		cur = "/"
	}
	if err := im.AddFile(cur, cur); err != nil {
		return "", err
	}
	return cur, nil
}

// addLibs adds what ldd lists for the ELF file p, if it is dynamically
// linked.
func (im *Image) addLibs(p string) error {
	dynamic, err := isDynamicELF(p)
	if err != nil || !dynamic {
		return err
	}
	libs, err := ldd(p)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		if _, err := im.addHostPath(lib); err != nil {
			return err
		}
	}
	return nil
}

// isDynamicELF reports whether p is an ELF file with an interpreter or
// dynamic section (a shared library or a dynamically linked program).
func isDynamicELF(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		return false, nil // not ELF: a script or data, nothing to bring
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			return true, nil
		}
	}
	return false, nil
}

// ldd returns the absolute paths of the libraries and the interpreter
// ldd(1) lists for p.
func ldd(p string) ([]string, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command("ldd", p)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("image: ldd %s: %w: %s", p, err, strings.TrimSpace(stderr.String()))
	}
	return parseLdd(out.String())
}

// parseLdd reads ldd's lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6
// (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1
// (0x...)" (in the kernel, skipped). A library ldd did not find is an
// error.
func parseLdd(s string) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>":
			if f[2] == "not" {
				return nil, fmt.Errorf("image: ldd: %s not found", f[0])
			}
			if path.IsAbs(f[2]) {
				libs = append(libs, f[2])
			}
		case len(f) >= 1 && path.IsAbs(f[0]):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}
