package afxdp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// setsockopt sets an SOL_XDP option from a struct.
func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	return errnoErr(e)
}

// getsockopt reads an SOL_XDP option into a struct of n bytes.
func getsockopt(fd, opt int, p unsafe.Pointer, n uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt),
		uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	return errnoErr(e)
}

// kickTx asks the kernel to process the TX ring: sendto(fd, NULL, 0, MSG_DONTWAIT).
func kickTx(fd int) error {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errnoErr(e)
}

// wakeRx asks the kernel to process the fill ring: recvfrom(fd, NULL, 0, MSG_DONTWAIT).
func wakeRx(fd int) error {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errnoErr(e)
}

// errnoErr returns nil for 0 and the Errno otherwise, without allocating.
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// transient reports kick/wake errors that only mean "try again later".
func transient(err error) bool {
	switch err {
	case unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.ENETDOWN, unix.EINTR:
		return true
	}
	return false
}
