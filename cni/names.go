package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// hostIfPrefix starts every host-side veth name the plugin makes.
const hostIfPrefix = "xvr"

// HostIfName is the host-side veth of the pod interface ifname of sandbox
// containerID: "xvr" and the first 11 hex digits of
// sha256(containerID + "/" + ifname), 14 bytes.
func HostIfName(containerID, ifname string) string {
	sum := sha256.Sum256([]byte(attachmentKey(containerID, ifname)))
	return hostIfPrefix + hex.EncodeToString(sum[:6])[:11]
}

// PortID is the xvrd port ID of a pod interface, the same as its key.
func PortID(containerID, ifname string) string { return attachmentKey(containerID, ifname) }

// attachmentKey is "containerID/ifname", also the host veth's alias.
func attachmentKey(containerID, ifname string) string { return containerID + "/" + ifname }

// maxAlias is the longest alias Linux keeps (IFALIASZ - 1).
const maxAlias = 255

// ownAlias reports whether a host link named name with alias alias is one
// the plugin made, and returns its sandbox and interface.
// ownName reports whether name has the shape of HostIfName's: the prefix
// and 11 lowercase hex digits.
func ownName(name string) bool {
	if len(name) != len(hostIfPrefix)+11 || !strings.HasPrefix(name, hostIfPrefix) {
		return false
	}
	for _, c := range name[len(hostIfPrefix):] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func ownAlias(name, alias string) (containerID, ifname string, ok bool) {
	if !strings.HasPrefix(name, hostIfPrefix) {
		return "", "", false
	}
	i := strings.LastIndexByte(alias, '/')
	if i <= 0 || i == len(alias)-1 {
		return "", "", false
	}
	containerID, ifname = alias[:i], alias[i+1:]
	return containerID, ifname, HostIfName(containerID, ifname) == name
}
