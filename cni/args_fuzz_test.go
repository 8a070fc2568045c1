package cni

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzArgs: CNI_ARGS as kubelet or a hostile runtime passes them. ParseArgs
// never panics, returns args or a code 7 error (not both), and PodRef names
// a pod exactly when both K8S_POD_NAMESPACE and K8S_POD_NAME are set.
func FuzzArgs(f *testing.F) {
	for _, s := range []string{
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=u1;K8S_POD_INFRA_CONTAINER_ID=c1",
		"K8S_POD_NAMESPACE=default", "K8S_POD_NAME=", "=", ";;", "a=b=c", "K8S_POD_NAMESPACE=a;K8S_POD_NAMESPACE=b",
		"IgnoreUnknown=maybe", "K8S_POD_NAME=\x00;K8S_POD_NAMESPACE=\xff", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		if (err == nil) == (a == nil) {
			t.Fatalf("args %+v with error %v", a, err)
		}
		if err != nil {
			var e *types.Error
			if !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig {
				t.Fatalf("error %v is not a code 7 CNI error", err)
			}
			return
		}
		ref := a.PodRef()
		named := a.K8S_POD_NAMESPACE != "" && a.K8S_POD_NAME != ""
		if (ref != nil) != named || ref != nil && (ref.Namespace != string(a.K8S_POD_NAMESPACE) || ref.Name != string(a.K8S_POD_NAME)) {
			t.Fatalf("pod ref %+v from %+v", ref, a)
		}
	})
}
