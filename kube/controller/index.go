package controller

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/v1alpha1"
)

// Cache indexes.
const (
	// indexIIPNetwork: an InstanceIP under each VN key it uses, its
	// spec.network and its spec.attachment.
	indexIIPNetwork = "xvr.io/network"
	// indexIIPNode: an InstanceIP under its spec.node.
	indexIIPNode = "xvr.io/node"
	// indexIIPPod: an InstanceIP under its pod's "namespace/name".
	indexIIPPod = "xvr.io/pod"
	// indexVNContrail: a VN under "<project>/<vnName>".
	indexVNContrail = "xvr.io/contrail"
	// indexVNRef: a referencing VN under its target's "<project>/<name>".
	indexVNRef = "xvr.io/ref"
)

func addIndexes(ctx context.Context, fi client.FieldIndexer) error {
	indexes := []struct {
		obj   client.Object
		name  string
		value func(client.Object) []string
	}{
		{&v1alpha1.InstanceIP{}, indexIIPNetwork, iipIndex(iipNetworks)},
		{&v1alpha1.InstanceIP{}, indexIIPNode, iipIndex(func(s *v1alpha1.InstanceIPSpec) []string { return nonEmpty(s.Node) })},
		{&v1alpha1.InstanceIP{}, indexIIPPod, iipIndex(iipPod)},
		{&v1alpha1.VirtualNetwork{}, indexVNContrail, vnIndex(func(s *v1alpha1.VirtualNetworkSpec) []string { return []string{contrailKey(s.Project, s.VNName)} })},
		{&v1alpha1.VirtualNetwork{}, indexVNRef, vnIndex(vnRef)},
	}
	for _, ix := range indexes {
		if err := fi.IndexField(ctx, ix.obj, ix.name, ix.value); err != nil {
			return fmt.Errorf("controller: index %s: %w", ix.name, err)
		}
	}
	return nil
}

func iipIndex(f func(*v1alpha1.InstanceIPSpec) []string) func(client.Object) []string {
	return func(o client.Object) []string {
		if iip, ok := o.(*v1alpha1.InstanceIP); ok {
			return f(&iip.Spec)
		}
		return nil
	}
}

func vnIndex(f func(*v1alpha1.VirtualNetworkSpec) []string) func(client.Object) []string {
	return func(o client.Object) []string {
		if vn, ok := o.(*v1alpha1.VirtualNetwork); ok {
			return f(&vn.Spec)
		}
		return nil
	}
}

// iipNetworks is the VN keys an InstanceIP uses, each once.
func iipNetworks(s *v1alpha1.InstanceIPSpec) []string {
	if s.Attachment == s.Network {
		return nonEmpty(s.Network)
	}
	return nonEmpty(s.Network, s.Attachment)
}

func iipPod(s *v1alpha1.InstanceIPSpec) []string {
	if s.Pod == nil {
		return nil
	}
	return []string{s.Pod.Namespace + "/" + s.Pod.Name}
}

func vnRef(s *v1alpha1.VirtualNetworkSpec) []string {
	if s.Ref == nil {
		return nil
	}
	return []string{contrailKey(s.Ref.Project, s.Ref.Name)}
}

// contrailKey is a VN's Contrail name as the indexes hold it.
func contrailKey(project, vn string) string { return project + "/" + vn }

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
