package gen

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNetNS runs fn on an OS thread switched into the named network namespace
// (from `ip netns add`) and switches back. If switching back fails, the
// thread stays locked, so the runtime ends it with the goroutine instead of
// reusing a thread in the wrong namespace. Goroutines that fn starts do not
// run in the namespace.
func InNetNS(name string, fn func() error) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer target.Close()
	return withNS(target, fn)
}

// withNS runs fn on a locked OS thread in target.
func withNS(target netns.NsHandle, fn func() error) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if orig.Equal(target) {
		defer runtime.UnlockOSThread()
		return fn()
	}
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	defer func() {
		if rerr := netns.Set(orig); rerr != nil {
			err = fmt.Errorf("return to netns (thread abandoned): %w", rerr)
			return // keep the thread locked: it dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}
