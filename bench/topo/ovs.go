package topo

import (
	"fmt"
	"os/exec"
)

// ovsTools are the programs an OVS AF_XDP topology needs.
var ovsTools = []string{"ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovsdb-tool"}

// OVSMissing returns the reason OVS cannot run here ("" when it can).
func OVSMissing() string {
	for _, t := range ovsTools {
		if _, err := exec.LookPath(t); err != nil {
			return "openvswitch-switch not installed (" + t + " not found)"
		}
	}
	return ""
}

// buildOVS is not implemented beyond detection: the userspace datapath with
// AF_XDP ports (ovsdb-server and ovs-vswitchd started by hand with a
// namespace-private run dir) is future work, so it is always skipped.
func buildOVS() error {
	if why := OVSMissing(); why != "" {
		return fmt.Errorf("%w: %s", ErrSkipped, why)
	}
	return fmt.Errorf("%w: ovs-afxdp topology not implemented yet in xvr-bench", ErrSkipped)
}
