// Package ethtool holds the one ethtool ioctl xvr needs: turning transmit
// checksum offload off on a device (`ethtool -K dev tx off`), so that the
// kernel sends complete checksums into an XDP path, which does not finish
// CHECKSUM_PARTIAL packets.
//
// Importers: cni (pod ends of veths), vrouter/hostif (the host interface).
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
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	v := value{cmd: unix.ETHTOOL_STXCSUM, data: 0}
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], dev)
	ifr.data = unsafe.Pointer(&v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&v)
	if errno != 0 {
		return fmt.Errorf("turning tx checksum offload off on %s: %w", dev, errno)
	}
	return nil
}
