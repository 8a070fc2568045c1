package node

import (
	"context"
	"encoding/json"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xvr-project/xvr/vrouter/api"
)

// Backend wraps the agent for the local API: pods are the API server's.
type Backend struct {
	api.Backend
	n *Node
}

// Backend returns b wrapped so that pods are read from, and network-status
// written to, the API server.
func (n *Node) Backend(b api.Backend) *Backend { return &Backend{Backend: b, n: n} }

// GetPod reads the pod live from the API server (the CNI's ADD: a cache
// could lag behind a pod just bound to this node). 404 when there is no
// such pod, 503 when the API server cannot be reached.
func (b *Backend) GetPod(ctx context.Context, namespace, name string) (api.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, b.n.cfg.Timeout)
	defer cancel()
	var p corev1.Pod
	if err := b.n.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &p); err != nil {
		return api.Pod{}, kubeError(err, "reading pod "+namespace+"/"+name)
	}
	return api.Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), Annotations: p.Annotations}, nil
}

// ApplyPod refuses: with Kubernetes, pods are the API server's.
func (b *Backend) ApplyPod(ctx context.Context, p api.Pod) (api.Pod, error) {
	return api.Pod{}, api.Conflict("pod %s: xvrd runs with Kubernetes; pods come from the API server", p.Key())
}

// DeletePod refuses, as ApplyPod.
func (b *Backend) DeletePod(ctx context.Context, namespace, name string) error {
	return api.Conflict("pod %s/%s: xvrd runs with Kubernetes; pods come from the API server", namespace, name)
}

// PublishNetworkStatus writes the pod's network-status annotation (spec
// v1.3: every interface with its IPs and MAC, the default network's marked)
// with a merge patch that names the pod's UID, so a pod recreated under the
// same name is not annotated with another sandbox's interfaces.
func (b *Backend) PublishNetworkStatus(ctx context.Context, namespace, name string) ([]api.NetworkStatus, error) {
	st, err := b.Backend.PodNetworkStatus(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(st)
	if err != nil {
		return nil, api.Errorf(http.StatusInternalServerError, "encoding network-status: %v", err)
	}
	meta := map[string]any{"annotations": map[string]string{api.NetworkStatusAnnotation: string(js)}}
	if uid := b.podUID(ctx, namespace, name); uid != "" {
		meta["uid"] = uid
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return nil, api.Errorf(http.StatusInternalServerError, "encoding the patch: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.n.cfg.Timeout)
	defer cancel()
	p := &corev1.Pod{}
	p.Namespace, p.Name = namespace, name
	if err := b.n.c.Patch(ctx, p, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return nil, kubeError(err, "writing the network-status of pod "+namespace+"/"+name)
	}
	return st, nil
}

// podUID is the UID the CNI gave for the pod's newest ports ("" if none).
func (b *Backend) podUID(ctx context.Context, namespace, name string) string {
	uid := ""
	for _, p := range b.Backend.ListPorts(ctx) {
		if p.Pod != nil && p.Pod.Namespace == namespace && p.Pod.Name == name && p.Pod.UID != "" {
			uid = p.Pod.UID
		}
	}
	return uid
}

// kubeError maps an API server error to the local API's statuses: a
// missing object is 404, a forbidden one 403 (RBAC), a refused request
// 409, anything else (unreachable,
// timeouts, 5xx) 503, which the CNI turns into "try again later".
func kubeError(err error, what string) error {
	switch {
	case apierrors.IsNotFound(err):
		return api.NotFound("%s: %v", what, err)
	case apierrors.IsForbidden(err):
		return api.Errorf(http.StatusForbidden, "%s: %v", what, err)
	case apierrors.IsConflict(err), apierrors.IsInvalid(err):
		return api.Conflict("%s: %v", what, err)
	default:
		return api.Errorf(http.StatusServiceUnavailable, "%s: the API server did not answer: %v", what, err)
	}
}

var _ api.Backend = (*Backend)(nil)
