package policy

// sparseCompiled is the alternative measured in decision 0008: each
// address interval keeps the sorted list of its rules other than AllPeers
// ones (instead of a bitset row), each port row the first AllPeers rule it
// holds; Check walks the list testing each rule's bit in the port row.
// Built from a Compiled, for the benchmarks only.
type sparseCompiled struct {
	set  *Set
	dirs [2]sparseDir
}

type sparseDir struct {
	k         *classifier
	list      []uint16
	off       []uint32   // list[off[i]:off[i+1]] are address interval i's rules
	portFirst [3][]int32 // per port interval: the first AllPeers rule of its row, or MaxRules
	other     int32
}

func newSparse(c *Compiled) *sparseCompiled {
	sc := &sparseCompiled{set: &c.set}
	for d := range sc.dirs {
		k := &c.cls[d]
		sd := &sc.dirs[d]
		sd.k = k
		rules := c.set.Rules(Direction(d))
		first := func(off uint32) int32 {
			for r := range rules {
				if rules[r].AllPeers && k.rows[int(off)+r/64]&(1<<(r%64)) != 0 {
					return int32(r)
				}
			}
			return MaxRules
		}
		for _, off := range k.addrRow {
			sd.off = append(sd.off, uint32(len(sd.list)))
			for r := range rules {
				if !rules[r].AllPeers && k.rows[int(off)+r/64]&(1<<(r%64)) != 0 {
					sd.list = append(sd.list, uint16(r))
				}
			}
		}
		sd.off = append(sd.off, uint32(len(sd.list)))
		for t := range k.port {
			for _, off := range k.port[t].row {
				sd.portFirst[t] = append(sd.portFirst[t], first(off))
			}
		}
		sd.other = first(k.otherRow)
	}
	return sc
}

func (sc *sparseCompiled) Check(d Direction, peer [4]byte, proto uint8, port uint16) Decision {
	if !sc.set.Isolated(d) {
		return NotIsolated
	}
	sd := &sc.dirs[Egress]
	if d == Ingress {
		sd = &sc.dirs[Ingress]
	}
	k := sd.k
	var q uint32
	f := sd.other
	switch t := protoIndex(proto); {
	case proto == ProtoTCP || proto == ProtoUDP || proto == ProtoSCTP:
		i := last(k.port[t].start, port)
		q, f = k.port[t].row[i], sd.portFirst[t][i]
	default:
		q = k.otherRow
	}
	a := uint32(peer[0])<<24 | uint32(peer[1])<<16 | uint32(peer[2])<<8 | uint32(peer[3])
	i := last(k.addr, a)
	row := k.rows[q : int(q)+k.words]
	for _, r := range sd.list[sd.off[i]:sd.off[i+1]] {
		if int32(r) >= f {
			break
		}
		if row[r/64]&(1<<(r%64)) != 0 {
			return Decision(r)
		}
	}
	if f < MaxRules {
		return Decision(f)
	}
	return Denied
}

// footprint counts what the sparse form would hold: the lists, their
// offsets, the address starts and the port tables with their rows.
func (sc *sparseCompiled) footprint() int {
	n := 0
	for i := range sc.dirs {
		sd := &sc.dirs[i]
		k := sd.k
		n += 2*len(sd.list) + 4*len(sd.off) + 4*len(k.addr)
		rows := map[uint32]bool{k.otherRow: true}
		for t := range k.port {
			n += 2*len(k.port[t].start) + 8*len(k.port[t].row)
			for _, off := range k.port[t].row {
				rows[off] = true
			}
		}
		n += 8 * k.words * len(rows)
	}
	return n
}
