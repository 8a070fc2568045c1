// Command pause is the sandbox ("infra") container of the project's pods,
// for containerd's sandbox_image: it holds the pod's namespaces, sleeping
// until SIGTERM or SIGINT, and reaps the zombies it inherits when the pod
// shares one PID namespace. Built static (CGO_ENABLED=0) by
// scripts/images.sh into the image xvr.local/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		reap()
	}
}

// reap collects every child that has exited.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
