package agent

import (
	"context"
	"net/http"
	"sort"

	"github.com/xvr-project/xvr/vrouter/api"
)

// ApplyPod records a pod's annotations (idempotent); the CNI reads its
// network selection from them.
func (a *Agent) ApplyPod(ctx context.Context, in api.Pod) (api.Pod, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !nameRE.MatchString(in.Namespace) || !nameRE.MatchString(in.Name) {
		return api.Pod{}, api.BadRequest("pod namespace %q and name %q must be DNS-1123 names", in.Namespace, in.Name)
	}
	if len(in.UID) > 128 {
		return api.Pod{}, api.BadRequest("pod %s: uid longer than 128 characters", in.Key())
	}
	if err := a.cfg.Store.PutPod(in); err != nil {
		return api.Pod{}, api.Errorf(http.StatusInternalServerError, "persisting pod %s: %v", in.Key(), err)
	}
	a.pods[in.Key()] = in
	return in, nil
}

// DeletePod forgets a pod's annotations (its ports are the CNI's to delete).
func (a *Agent) DeletePod(ctx context.Context, namespace, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := namespace + "/" + name
	if _, ok := a.pods[key]; !ok {
		return api.NotFound("pod %s not found", key)
	}
	if err := a.cfg.Store.DeletePod(namespace, name); err != nil {
		return api.Errorf(http.StatusInternalServerError, "deleting pod %s from the store: %v", key, err)
	}
	delete(a.pods, key)
	return nil
}

// GetPod returns one pod.
func (a *Agent) GetPod(ctx context.Context, namespace, name string) (api.Pod, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pods[namespace+"/"+name]
	if !ok {
		return api.Pod{}, api.NotFound("pod %s/%s not found", namespace, name)
	}
	return p, nil
}

// ListPods returns every pod, sorted.
func (a *Agent) ListPods(context.Context) []api.Pod {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]api.Pod, 0, len(a.pods))
	for _, p := range a.pods {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// PodNetworkStatus lists the interfaces of the pod's newest sandbox in
// interface order, as the multi-network spec's network-status.
func (a *Agent) PodNetworkStatus(ctx context.Context, namespace, name string) ([]api.NetworkStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var mine []*port
	newest := map[string]uint64{} // container -> latest change
	for _, p := range a.ports {
		if p.spec.Pod != nil && p.spec.Pod.Namespace == namespace && p.spec.Pod.Name == name {
			mine = append(mine, p)
			newest[p.spec.ContainerID] = max(newest[p.spec.ContainerID], p.seq)
		}
	}
	if len(mine) == 0 {
		return nil, api.NotFound("pod %s/%s has no interfaces", namespace, name)
	}
	sandbox := ""
	for c, s := range newest {
		if s > newest[sandbox] || sandbox == "" {
			sandbox = c
		}
	}
	out := []api.NetworkStatus{}
	sort.Slice(mine, func(i, j int) bool { return mine[i].spec.Index < mine[j].spec.Index })
	for _, p := range mine {
		if p.spec.ContainerID == sandbox {
			out = append(out, api.NetworkStatus{Name: p.spec.Network, Interface: p.spec.IfName,
				IPs: []string{p.spec.IP}, Mac: p.spec.MAC, Default: p.spec.Network == a.cfg.DefaultNetwork})
		}
	}
	return out, nil
}

// GC deletes every CNI-made port (one with a container ID) whose sandbox
// has no valid attachment. One CNI attachment (container, CNI_IFNAME=eth0)
// makes all of a pod's interfaces, so a listed container keeps all its ports.
func (a *Agent) GC(ctx context.Context, req api.GCRequest) (api.GCResult, error) {
	valid := map[string]bool{}
	for _, v := range req.ValidAttachments {
		valid[v.ContainerID] = true
	}
	a.mu.Lock()
	var doomed []string
	for id, p := range a.ports {
		if p.spec.ContainerID != "" && !valid[p.spec.ContainerID] {
			doomed = append(doomed, id)
		}
	}
	a.mu.Unlock()
	sort.Strings(doomed)
	res := api.GCResult{Removed: []string{}}
	for _, id := range doomed {
		if err := a.DeletePort(ctx, id); err != nil && !api.IsNotFound(err) {
			return res, err
		}
		res.Removed = append(res.Removed, id)
	}
	if len(doomed) > 0 {
		a.cfg.Log.Info("gc removed stale ports", "ports", doomed)
	}
	return res, nil
}
