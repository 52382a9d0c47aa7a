package rules

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Set is the rules of one load: every rule of every file, in file order
// and then in the order of each file.
type Set struct {
	Rules []*Rule
	// Files are the files read, in the order read.
	Files []string
}

// Rule returns the rule with the given name, nil if there is none.
func (s *Set) Rule(name string) *Rule {
	for _, r := range s.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Enabled returns the rules that are not disabled.
func (s *Set) Enabled() []*Rule {
	var out []*Rule
	for _, r := range s.Rules {
		if !r.Disabled {
			out = append(out, r)
		}
	}
	return out
}

// IsRuleFile says whether a directory entry is read as a rule file: a name
// ending in .yaml or .yml that does not start with a dot.
func IsRuleFile(name string) bool {
	return !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"))
}

// Files expands paths into the rule files they name: a file stands for
// itself, a directory for its rule files (IsRuleFile, not recursive) in
// name order.
func Files(paths ...string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, &Error{File: p, Msg: fmt.Sprintf("cannot read: %v", unwrapPath(err))}
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, &Error{File: p, Msg: fmt.Sprintf("cannot read the directory: %v", unwrapPath(err))}
		}
		for _, e := range ents {
			if !e.IsDir() && IsRuleFile(e.Name()) {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
	}
	return out, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// Load reads the rule files that paths name (see Files) into a Set. Rule
// names must be unique across all of them. Every problem of every file is
// reported, as an ErrorList.
func Load(paths ...string) (*Set, error) {
	files, err := Files(paths...)
	if err != nil {
		return nil, err
	}
	srcs := make([]Source, 0, len(files))
	var errs ErrorList
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &Error{File: f, Msg: fmt.Sprintf("cannot read: %v", unwrapPath(err))})
			continue
		}
		srcs = append(srcs, Source{Name: f, Data: data})
	}
	set, err := LoadSources(srcs...)
	if len(errs) > 0 {
		errs = append(errs, Errors(err)...)
		return nil, errs
	}
	return set, err
}

// Source is one rule file's name and content.
type Source struct {
	Name string
	Data []byte
}

// LoadSources parses rule files given as bytes into a Set.
func LoadSources(srcs ...Source) (*Set, error) {
	set := &Set{}
	var errs ErrorList
	where := map[string]*Rule{}
	for _, s := range srcs {
		rs, err := Parse(s.Name, s.Data)
		set.Files = append(set.Files, s.Name)
		if err != nil {
			errs = append(errs, Errors(err)...)
			continue
		}
		for _, r := range rs {
			if first, dup := where[r.Name]; dup {
				errs = append(errs, &Error{File: r.File, Line: r.Line, Field: "name",
					Msg: fmt.Sprintf("duplicate rule name %q (first defined at %s)", r.Name, first.Location())})
				continue
			}
			where[r.Name] = r
			set.Rules = append(set.Rules, r)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}

// Names returns the names of the set's rules, sorted.
func (s *Set) Names() []string {
	out := make([]string, len(s.Rules))
	for i, r := range s.Rules {
		out[i] = r.Name
	}
	slices.Sort(out)
	return out
}
