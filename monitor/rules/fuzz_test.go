package rules

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the rule parser: it must not panic,
// every error must name the file and wrap ErrInvalid, and every rule it
// accepts must be compiled.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"testdata/bad/*.yaml", "testdata/good/*.yaml", "../../configs/rules/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("rules:\n  - &a {name: A, level: INFO, scope: jobmanager, pattern: [{name: e1, where: 'true'}]}\n  - *a\n"))
	f.Add([]byte("rules: [{name: A, level: INFO, scope: jobmanager, pattern: [{name: e1, where: 'e1.x > 1', times: [0, 3]}, {name: e2, where: 'true', contiguity: next}], output: ['e1[0].x as x']}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			for _, e := range Errors(err) {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("bad error %#v", e)
				}
			}
			if len(rs) != 0 {
				t.Fatal("rules returned with an error")
			}
			return
		}
		for _, r := range rs {
			if r.NFA() == nil || r.Fingerprint() == "" || len(r.Pattern) == 0 || r.Level.Severity() == 0 {
				t.Fatalf("accepted an incomplete rule: %+v", r)
			}
			for _, o := range r.Outputs {
				if o.prog == nil {
					t.Fatalf("output %q not compiled", o.Name)
				}
			}
		}
	})
}
