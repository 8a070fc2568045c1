package cni

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
)

// openNS opens the network namespace at path, or the plugin's own when path
// is empty. The caller closes the handle.
func openNS(path string) (netns.NsHandle, error) {
	if path == "" {
		h, err := netns.Get()
		if err != nil {
			return netns.None(), fmt.Errorf("opening own netns: %w", err)
		}
		return h, nil
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("opening netns %s: %w", path, err)
	}
	return h, nil
}

// inNS runs f on this goroutine's OS thread switched into target, then
// switches back. f must not start goroutines: they would not inherit the
// namespace. If switching back fails the thread stays locked, so the
// runtime retires it with the goroutine instead of reusing it.
func inNS(target netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening own netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering netns: %w", err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leaving netns: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// disableIPv6 turns IPv6 off on dev in the calling thread's netns.
func disableIPv6(dev string) error {
	p := "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // kernel without IPv6: nothing to disable
		}
		return fmt.Errorf("disabling ipv6 on %s: %w", dev, err)
	}
	return nil
}
