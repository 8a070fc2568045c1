package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Hand-written deep copies (the types are small; no code generator).

// DeepCopyInto copies s into out.
func (s *VirtualNetworkSpec) DeepCopyInto(out *VirtualNetworkSpec) {
	*out = *s
	if s.Ref != nil {
		r := *s.Ref
		out.Ref = &r
	}
}

// DeepCopyInto copies s into out.
func (s *VirtualNetworkStatus) DeepCopyInto(out *VirtualNetworkStatus) {
	*out = *s
	if s.Conditions != nil {
		out.Conditions = make([]metav1.Condition, len(s.Conditions))
		for i := range s.Conditions {
			s.Conditions[i].DeepCopyInto(&out.Conditions[i])
		}
	}
}

// DeepCopyInto copies v into out.
func (v *VirtualNetwork) DeepCopyInto(out *VirtualNetwork) {
	*out = *v
	out.TypeMeta = v.TypeMeta
	v.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	v.Spec.DeepCopyInto(&out.Spec)
	v.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a copy of v.
func (v *VirtualNetwork) DeepCopy() *VirtualNetwork {
	if v == nil {
		return nil
	}
	out := new(VirtualNetwork)
	v.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (v *VirtualNetwork) DeepCopyObject() runtime.Object { return v.DeepCopy() }

// DeepCopyInto copies l into out.
func (l *VirtualNetworkList) DeepCopyInto(out *VirtualNetworkList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]VirtualNetwork, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopyObject implements runtime.Object.
func (l *VirtualNetworkList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := new(VirtualNetworkList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies s into out.
func (s *InstanceIPSpec) DeepCopyInto(out *InstanceIPSpec) {
	*out = *s
	if s.Pod != nil {
		p := *s.Pod
		out.Pod = &p
	}
}

// DeepCopyInto copies i into out.
func (i *InstanceIP) DeepCopyInto(out *InstanceIP) {
	*out = *i
	i.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	i.Spec.DeepCopyInto(&out.Spec)
}

// DeepCopy returns a copy of i.
func (i *InstanceIP) DeepCopy() *InstanceIP {
	if i == nil {
		return nil
	}
	out := new(InstanceIP)
	i.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (i *InstanceIP) DeepCopyObject() runtime.Object { return i.DeepCopy() }

// DeepCopyInto copies l into out.
func (l *InstanceIPList) DeepCopyInto(out *InstanceIPList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]InstanceIP, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopyObject implements runtime.Object.
func (l *InstanceIPList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := new(InstanceIPList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies s into out.
func (s *NodePolicySpec) DeepCopyInto(out *NodePolicySpec) {
	*out = NodePolicySpec{}
	if s.Interfaces != nil {
		out.Interfaces = make([]InterfacePolicy, len(s.Interfaces))
		for i, p := range s.Interfaces {
			out.Interfaces[i] = InterfacePolicy{Pod: p.Pod, Network: p.Network, Policy: p.Policy.Clone()}
		}
	}
}

// DeepCopyInto copies p into out.
func (p *NodePolicy) DeepCopyInto(out *NodePolicy) {
	out.TypeMeta = p.TypeMeta
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	p.Spec.DeepCopyInto(&out.Spec)
}

// DeepCopy returns a copy of p.
func (p *NodePolicy) DeepCopy() *NodePolicy {
	if p == nil {
		return nil
	}
	out := new(NodePolicy)
	p.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (p *NodePolicy) DeepCopyObject() runtime.Object { return p.DeepCopy() }

// DeepCopyInto copies l into out.
func (l *NodePolicyList) DeepCopyInto(out *NodePolicyList) {
	out.TypeMeta = l.TypeMeta
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]NodePolicy, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopyObject implements runtime.Object.
func (l *NodePolicyList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := new(NodePolicyList)
	l.DeepCopyInto(out)
	return out
}
