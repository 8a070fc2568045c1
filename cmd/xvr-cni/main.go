// Command xvr-cni is xvr's CNI plugin, installed in the CNI bin directory as
// "xvr" (and "contrail-k8s-cni" for configs written for Tungsten Fabric).
// See docs/cni.md.
//
// `xvr-cni install` installs the plugin and a conflist on a node (the node
// DaemonSet's init container, deploy/kubernetes/node.yaml).
package main

import (
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/xvr-project/xvr/cni"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// A runtime runs the plugin with no arguments (CNI_COMMAND says what to do).
	if len(os.Args) > 1 && os.Args[1] == "install" {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(os.Stderr, "xvr-cni install: %v\n", err)
			os.Exit(1)
		}
		os.Exit(install(os.Args[2:], self, os.Stdout, os.Stderr))
	}
	skel.PluginMainFuncs(cni.Funcs(), cni.Versions, "xvr-cni "+version+": multi-interface pods on xvr")
}
