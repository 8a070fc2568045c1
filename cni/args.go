package cni

import (
	"github.com/containernetworking/cni/pkg/types"

	"github.com/xvr-project/xvr/vrouter/api"
)

// K8sArgs is what kubelet passes in CNI_ARGS.
type K8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // kubelet's names
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive
	K8S_POD_UID                types.UnmarshallableString //nolint:revive
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive
}

// ParseArgs decodes CNI_ARGS ("K=V;K2=V2"), ignoring unknown keys. A
// malformed string is a *types.Error with code 7.
func ParseArgs(s string) (*K8sArgs, error) {
	a := &K8sArgs{}
	a.IgnoreUnknown = true
	if err := types.LoadArgs(s, a); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, clip("parsing CNI_ARGS: "+err.Error(), maxMsg), "")
	}
	return a, nil
}

// PodRef returns the pod the args name, or nil when the namespace or the
// name is missing (the pod then gets only its default interface).
func (a *K8sArgs) PodRef() *api.PodRef {
	if a.K8S_POD_NAMESPACE == "" || a.K8S_POD_NAME == "" {
		return nil
	}
	return &api.PodRef{Namespace: string(a.K8S_POD_NAMESPACE), Name: string(a.K8S_POD_NAME), UID: string(a.K8S_POD_UID)}
}
