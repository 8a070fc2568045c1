// Package ethtool holds the ethtool ioctls xvr needs: turning transmit
// checksum offload off on a device (`ethtool -K dev tx off`), so that the
// kernel sends complete checksums into an XDP path, which does not finish
// CHECKSUM_PARTIAL packets; and turning GRO on and reading it
// (`ethtool -K dev gro on`), which on a veth also gives it the NAPI
// context that frames redirected by XDP from another device need.
//
// Importers: cni (pod ends of veths), vrouter/hostif (the host interface),
// bench/topo and tests.
package ethtool

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// value is struct ethtool_value.
type value struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with ifr_data, padded to the kernel's 40 bytes.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// TxChecksumOff turns transmit checksum offload off on dev in the calling
// thread's netns.
func TxChecksumOff(dev string) error {
	if _, err := ioctl(dev, unix.ETHTOOL_STXCSUM, 0); err != nil {
		return fmt.Errorf("turning tx checksum offload off on %s: %w", dev, err)
	}
	return nil
}

// GROOn turns generic receive offload on on dev in the calling thread's
// netns.
func GROOn(dev string) error {
	if _, err := ioctl(dev, unix.ETHTOOL_SGRO, 1); err != nil {
		return fmt.Errorf("turning gro on on %s: %w", dev, err)
	}
	return nil
}

// GRO says whether generic receive offload is on on dev in the calling
// thread's netns.
func GRO(dev string) (bool, error) {
	v, err := ioctl(dev, unix.ETHTOOL_GGRO, 0)
	if err != nil {
		return false, fmt.Errorf("reading gro of %s: %w", dev, err)
	}
	return v != 0, nil
}

// ioctl runs one SIOCETHTOOL command with an ethtool_value and returns the
// value's data as the kernel left it.
func ioctl(dev string, cmd, data uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	v := value{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], dev)
	ifr.data = unsafe.Pointer(&v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&v)
	if errno != 0 {
		return 0, errno
	}
	return v.data, nil
}
