package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/kube/v1alpha1"
	"github.com/xvr-project/xvr/nad"
)

// vniAllocator hands out cluster-unique VNIs. The controller is the only
// writer of VirtualNetworks (leader election), and the allocator reads the
// VNs others hold from the API server itself, not the cache, under a lock
// that also covers the write, so two VNs never get one VNI.
type vniAllocator struct {
	mu  sync.Mutex
	api client.Reader
}

// write runs write for vn, first giving vn a VNI when it has its own
// address space (no Ref) and none yet. A reference's VNI is 0.
func (a *vniAllocator) write(ctx context.Context, vn *v1alpha1.VirtualNetwork, write func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if vn.Spec.Ref != nil {
		vn.Spec.VNI = 0
		return write()
	}
	if vn.Spec.VNI == 0 {
		used, err := a.used(ctx, vn.Key())
		if err != nil {
			return err
		}
		if vn.Spec.VNI, err = pickVNI(nad.VNI(vn.Spec.Project, vn.Spec.VNName), used); err != nil {
			return fmt.Errorf("VirtualNetwork %s: %w", vn.Key(), err)
		}
	}
	return write()
}

// used is the set of VNIs VNs other than key hold.
func (a *vniAllocator) used(ctx context.Context, key string) (map[uint32]bool, error) {
	var list v1alpha1.VirtualNetworkList
	if err := a.api.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing VirtualNetworks for a VNI: %w", err)
	}
	used := make(map[uint32]bool, len(list.Items))
	for i := range list.Items {
		vn := &list.Items[i]
		if vn.Key() != key && vn.Spec.Ref == nil && vn.Spec.VNI != 0 {
			used[vn.Spec.VNI] = true
		}
	}
	return used, nil
}

var errNoVNI = errors.New("every VNI is taken")

// pickVNI returns the first VNI from start on (wrapping from nad.MaxVNI to
// 1) that used does not hold.
func pickVNI(start uint32, used map[uint32]bool) (uint32, error) {
	if start == 0 || start > nad.MaxVNI {
		start = 1
	}
	v := start
	for range nad.MaxVNI {
		if !used[v] {
			return v, nil
		}
		if v++; v > nad.MaxVNI {
			v = 1
		}
	}
	return 0, errNoVNI
}
