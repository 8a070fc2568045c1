package cpuset

import (
	"runtime"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string][]int{
		"": nil, "1": {1}, "0,2-4": {0, 2, 3, 4}, " 3 , 1-2,3": {3, 1, 2}, "7-7": {7},
	} {
		got, err := Parse(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"a", "1,", "-1", "3-1", "1-x", "99999", ","} {
		if got, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, no error", bad, got)
		}
	}
}

func TestWithoutAndMembers(t *testing.T) {
	s := Without(Set(0, 1, 5), []int{1, 9})
	if got := members(s); !slices.Equal(got, []int{0, 5}) {
		t.Fatalf("members %v", got)
	}
}

// TestPinThread pins a locked thread to one CPU it may use and reads it back.
func TestPinThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	defer PinThread(orig)
	one := members(orig)[0]
	if err := PinThread(Set(one)); err != nil {
		t.Fatal(err)
	}
	now, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if got := members(now); !slices.Equal(got, []int{one}) {
		t.Fatalf("after pinning to %d the thread may run on %v", one, got)
	}
	if err := PinThread(Set(maxCPUs - 1)); err == nil {
		t.Fatal("pinning to a CPU the machine lacks: no error")
	}
}
