package cep

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

var testStages = map[string]int32{"e1": 0, "e2": 1}

// testContexts are events under test, each with partial matches: e1 with
// no event, with one, with several.
func testContexts() []evalCtx {
	mk := func(name string, v float64, labels map[string]any) *record {
		return &record{ev: Event{Time: t0, JobID: "j" + name, TMID: "w", Hostname: "h",
			MetricsName: name, MetricsKey: "k", MetricsValue: v, Labels: labels}}
	}
	cur := []*record{
		mk("a", 1, nil), mk("b", 0.5, map[string]any{"jobName": "etl"}), mk("a", -3, nil),
		mk("c", math.NaN(), nil), mk("", 1e9, nil), mk("zz", 0, nil),
	}
	e1a := &node{rec: mk("a", 1, nil), stage: 0}
	e1b := &node{rec: mk("b", 2.5, nil), stage: 0, prev: e1a}
	e2 := &node{rec: mk("c", 7, nil), stage: 1, prev: e1b}
	tails := []*node{nil, e1a, e1b, e2}
	var out []evalCtx
	for _, r := range cur {
		for _, tl := range tails {
			out = append(out, evalCtx{rec: r, tail: tl})
		}
	}
	return out
}

// checkSame compiles src and, when it has a native form, requires native
// and VM to agree on every test context.
func checkSame(t testing.TB, src string) (native bool) {
	c, err := compileCondition(src, testStages)
	if err != nil {
		return false
	}
	var rt condRuntime
	for _, ctx := range testContexts() {
		vv, vok := rt.evalVM(c, &ctx)
		if c.native == nil {
			continue
		}
		nv, nok := c.native(&ctx)
		if vok != nok || (vok && vv != nv) {
			t.Fatalf("%q on %s (tail %d): native (%v, %v), VM (%v, %v)",
				src, ctx.rec.ev.MetricsName, countNodes(ctx.tail), nv, nok, vv, vok)
		}
	}
	return c.native != nil
}

func countNodes(n *node) int {
	k := 0
	for ; n != nil; n = n.prev {
		k++
	}
	return k
}

func TestNativeCoverage(t *testing.T) {
	for _, tc := range []struct {
		src    string
		native bool
	}{
		{`metricsValue > 0.9`, true},
		{`0.9 < metricsValue`, true},
		{`metricsName == "heap" && metricsValue >= 90`, true},
		{`jobID == e1.jobID && metricsValue > e1.metricsValue * 1.2`, true},
		{`len(e1) == 0 || metricsValue < e1.metricsValue`, true},
		{`!(metricsValue != 1) or hostname < "m"`, true},
		{`(metricsValue - e1.metricsValue) / 2 > -1`, true},
		{`metricsName in ["a", "b"]`, false},
		{`jobName == "etl"`, false},
		{`time > e1.time`, false},
		{`mean(map(e1, .metricsValue)) > 1`, false},
		{`e1[0].metricsValue > 1`, false},
	} {
		if got := checkSame(t, tc.src); got != tc.native {
			t.Errorf("%q: native = %v, want %v", tc.src, got, tc.native)
		}
	}
}

// TestNativeMatchesVM generates expressions of the fast path's grammar and
// checks both paths agree, including on run-time errors.
func TestNativeMatchesVM(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	natives := 0
	for range 3000 {
		if checkSame(t, genBool(rng, 3)) {
			natives++
		}
	}
	if natives < 1500 {
		t.Fatalf("only %d of 3000 generated expressions took the fast path", natives)
	}
}

func genNum(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(3) == 0 {
		switch r.IntN(7) {
		case 0:
			return fmt.Sprint(r.IntN(5) - 2)
		case 1:
			return fmt.Sprintf("%.2f", r.Float64()*4-2)
		case 2:
			return "len(e1)"
		case 3:
			return "e1.metricsValue"
		case 4:
			return "e2.metricsValue"
		default:
			return "metricsValue"
		}
	}
	ops := []string{"+", "-", "*", "/"}
	if r.IntN(6) == 0 {
		return "-(" + genNum(r, depth-1) + ")"
	}
	return "(" + genNum(r, depth-1) + " " + ops[r.IntN(len(ops))] + " " + genNum(r, depth-1) + ")"
}

func genStr(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return `"a"`
	case 1:
		return `"ja"`
	case 2:
		return "e1.jobID"
	case 3:
		return "e1.metricsName"
	case 4:
		return "jobID"
	default:
		return "metricsName"
	}
}

func genBool(r *rand.Rand, depth int) string {
	cmp := []string{"==", "!=", "<", "<=", ">", ">="}
	if depth == 0 || r.IntN(3) == 0 {
		switch r.IntN(5) {
		case 0:
			return genStr(r) + " " + cmp[r.IntN(len(cmp))] + " " + genStr(r)
		case 1:
			return []string{"true", "false"}[r.IntN(2)]
		default:
			return genNum(r, 2) + " " + cmp[r.IntN(len(cmp))] + " " + genNum(r, 2)
		}
	}
	switch r.IntN(4) {
	case 0:
		return "!(" + genBool(r, depth-1) + ")"
	case 1:
		return "(" + genBool(r, depth-1) + ") == (" + genBool(r, depth-1) + ")"
	case 2:
		return "(" + genBool(r, depth-1) + " || " + genBool(r, depth-1) + ")"
	default:
		return "(" + genBool(r, depth-1) + " && " + genBool(r, depth-1) + ")"
	}
}

// FuzzCondition: compiling and evaluating any condition text neither
// panics nor lets the two evaluation paths disagree.
func FuzzCondition(f *testing.F) {
	for _, s := range []string{
		`metricsValue > 0.9`,
		`jobID == e1.jobID && metricsValue > e1.metricsValue * 1.2`,
		`len(e1) > 2 && mean(map(e1, .metricsValue)) > 0.5`,
		`e1?.metricsValue > 1`,
		`let x = e1.metricsValue; x > 1`,
		`jobName matches "^etl" || time > now()`,
		`e1[5].jobID == jobID`,
		`1 / 0 > metricsValue`,
		`-(-metricsValue) <= e2.metricsValue % 2`,
		strings.Repeat("(", 50) + "true" + strings.Repeat(")", 50),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		checkSame(t, src)
	})
}
