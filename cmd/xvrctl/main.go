// Command xvrctl is the operator's CLI for xvrd: it applies virtual networks
// from NetworkAttachmentDefinition YAML, manages ports and static routes, and
// shows what the forwarder holds in TF's terms (vif, rt, nh, dropstats).
//
// It talks to xvrd's local API on its unix socket (--socket, $XVR_SOCKET,
// default /run/xvr/xvrd.sock), which is root only. docs/cli.md lists every
// command. Exit status: 0 on success, 1 on any error, with a one-line
// message on stderr.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
