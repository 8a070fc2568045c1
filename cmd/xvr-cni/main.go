// Command xvr-cni is xvr's CNI plugin, installed in the CNI bin directory as
// "xvr" (and "contrail-k8s-cni" for configs written for Tungsten Fabric).
// See docs/cni.md.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/xvr-project/xvr/cni"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	skel.PluginMainFuncs(cni.Funcs(), cni.Versions, "xvr-cni "+version+": multi-interface pods on xvr")
}
