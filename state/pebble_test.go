package state

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func TestKeyLayout(t *testing.T) {
	k := AppendKey(nil, 7, 300, []byte("ns"), "user-1")
	st, kg, ns, key, err := SplitKey(k)
	if err != nil || st != 7 || kg != 300 || string(ns) != "ns" || string(key) != "user-1" {
		t.Fatalf("SplitKey = %d %d %q %q %v", st, kg, ns, key, err)
	}
	lo, hi := KeyGroupBounds(7, 300)
	if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
		t.Error("key outside its key group's bounds")
	}
	if k2 := AppendKey(nil, 7, 301, nil, ""); bytes.Compare(k2, hi) < 0 {
		t.Error("next key group inside the bounds")
	}
	nlo, nhi := NamespaceBounds(7, 300, []byte("ns"))
	if bytes.Compare(k, nlo) < 0 || bytes.Compare(k, nhi) >= 0 {
		t.Error("key outside its namespace's bounds")
	}
	// Namespaces are prefix-free: "n" + key "sx" is not in namespace "ns".
	if k3 := AppendKey(nil, 7, 300, []byte("n"), "sx"); bytes.Compare(k3, nlo) >= 0 && bytes.Compare(k3, nhi) < 0 {
		t.Error("namespace n's key inside namespace ns")
	}
	if _, _, _, _, err := SplitKey([]byte{0, 1, 0, 2, 9}); err == nil {
		t.Error("no error for a bad namespace length")
	}
}

func TestOpenPebbleIsScratch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pebble")
	p, err := OpenPebble(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.DB().Set(AppendKey(nil, 1, 2, nil, "k"), []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = OpenPebble(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, c, err := p.DB().Get(AppendKey(nil, 1, 2, nil, "k")); err == nil {
		c.Close()
		t.Error("an old store's data survived reopening")
	}
}
