package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tidewatch/tidewatch/monitor/cep"
)

// Bounds on one rule file: rule files are outside input, and a bound keeps
// a hostile or broken file from costing unbounded time or memory.
const (
	MaxFileSize = 1 << 20
	maxRules    = 4096
	maxStages   = 32
	maxCount    = 1000 // times, timesOrMore: the automaton has a state per count
	maxOutputs  = 64
	maxListLen  = 256
)

var (
	ruleNameRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,127}$`)
	identRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	metricNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_:.]{0,127}$`)
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): `)
)

var (
	fileKeys  = []string{"rules"}
	ruleKeys  = []string{"name", "description", "level", "scope", "metrics", "partitionBy", "within", "skip", "pattern", "output", "action", "resolveAfter", "disabled"}
	stageKeys = []string{"name", "where", "or", "until", "contiguity", "not", "times", "timesOrMore", "oneOrMore", "optional", "greedy", "consecutive", "allowCombinations"}
	actKeys   = []string{"type", "params", "dryRun", "cooldown"}
	quantKeys = []string{"times", "timesOrMore", "oneOrMore"}
)

// Parse parses and compiles the rules of one file; file names it in error
// messages. An empty file has no rules. Every problem found is reported, as
// an ErrorList of *Error in line order.
func Parse(file string, data []byte) ([]*Rule, error) {
	d := &decoder{file: file}
	rules := d.parseFile(data)
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, d.errs
	}
	return rules, nil
}

// decoder walks the YAML node tree, so that every error can name the line
// and the field it is about. It collects every error instead of stopping at
// the first.
type decoder struct {
	file string
	errs ErrorList
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	e := &Error{File: d.file, Field: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

func (d *decoder) parseFile(data []byte) []*Rule {
	if len(data) > MaxFileSize {
		d.errorf(nil, "", "file is larger than %d bytes", MaxFileSize)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		d.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			d.yamlError(err)
		} else {
			d.errorf(&extra, "", "a rule file must be a single YAML document")
		}
		return nil
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		doc = doc.Content[0]
	}
	doc = deref(doc)
	if isNull(doc) {
		return nil
	}
	if doc.Kind != yaml.MappingNode {
		d.errorf(doc, "", "a rule file must be a mapping with a rules list, got %s", describe(doc))
		return nil
	}
	f := d.fields(doc, "", fileKeys)
	list, ok := f["rules"]
	if !ok {
		d.errorf(doc, "rules", "missing: a rule file holds a list of rules under the key rules")
		return nil
	}
	items := d.list(list.val, "rules", maxRules)
	var out []*Rule
	names := map[string]int{}
	for i, n := range items {
		path := fmt.Sprintf("rules[%d]", i)
		r := d.rule(n, path)
		if r == nil {
			continue
		}
		if line, dup := names[r.Name]; dup {
			d.errorf(n, path+".name", "duplicate rule name %q (first defined at line %d)", r.Name, line)
			continue
		}
		names[r.Name] = r.Line
		out = append(out, r)
	}
	return out
}

// yamlError reports a syntax error of the YAML parser at its line.
func (d *decoder) yamlError(err error) {
	msg := err.Error()
	e := &Error{File: d.file}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	e.Msg = "invalid YAML: " + msg
	d.errs = append(d.errs, e)
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "an alias"
}

type keyVal struct {
	key, val *yaml.Node
}

// fields returns the pairs of mapping n by key, reporting keys that are not
// strings, duplicated or not in known.
func (d *decoder) fields(n *yaml.Node, path string, known []string) map[string]keyVal {
	out := make(map[string]keyVal, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		p := join(path, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			d.errorf(k, path, "a key must be a name, got %s", describe(k))
		case !slices.Contains(known, k.Value):
			if near := closest(k.Value, known); near != "" {
				d.errorf(k, p, "unknown key; did you mean %s?", near)
			} else {
				d.errorf(k, p, "unknown key (known keys: %s)", strings.Join(known, ", "))
			}
		case out[k.Value].key != nil:
			d.errorf(k, p, "duplicate key (first at line %d)", out[k.Value].key.Line)
		default:
			out[k.Value] = keyVal{key: k, val: v}
		}
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) list(n *yaml.Node, path string, limit int) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list, got %s", describe(n))
		return nil
	}
	if len(n.Content) > limit {
		d.errorf(n, path, "more than %d entries", limit)
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out
}

func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "must be a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// strList accepts one string or a list of strings.
func (d *decoder) strList(n *yaml.Node, path string) ([]string, bool) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return []string{n.Value}, true
	}
	items := d.list(n, path, maxListLen)
	if items == nil {
		return nil, n.Kind == yaml.SequenceNode && len(n.Content) == 0
	}
	out := make([]string, 0, len(items))
	ok := true
	for i, c := range items {
		s, good := d.str(c, fmt.Sprintf("%s[%d]", path, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var b bool
		if n.Decode(&b) == nil {
			return b, true
		}
	}
	d.errorf(n, path, "must be true or false, got %s", describe(n))
	return false, false
}

func (d *decoder) integer(n *yaml.Node, path string, min int) (int, bool) {
	return d.intRange(n, path, min, math.MaxInt32)
}

func (d *decoder) intRange(n *yaml.Node, path string, min, max int) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var v int
		if n.Decode(&v) == nil {
			if v < min {
				d.errorf(n, path, "must be at least %d, got %d", min, v)
				return 0, false
			}
			if v > max {
				d.errorf(n, path, "must be at most %d, got %d", max, v)
				return 0, false
			}
			return v, true
		}
	}
	d.errorf(n, path, "must be an integer, got %s", describe(n))
	return 0, false
}

func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if v, err := time.ParseDuration(n.Value); err == nil {
			if v <= 0 {
				d.errorf(n, path, "must be positive, got %s", n.Value)
				return 0, false
			}
			return v, true
		}
	}
	d.errorf(n, path, `must be a duration like "5m" or "90s", got %s`, describe(n))
	return 0, false
}

func (d *decoder) oneOf(n *yaml.Node, path string, choices ...string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	if !slices.Contains(choices, s) {
		d.errorf(n, path, "must be one of %s, got %q", strings.Join(choices, ", "), s)
		return "", false
	}
	return s, true
}

// rule decodes, validates and compiles one rule; nil if it has errors.
func (d *decoder) rule(n *yaml.Node, path string) *Rule {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "a rule must be a mapping, got %s", describe(n))
		return nil
	}
	before := len(d.errs)
	f := d.fields(n, path, ruleKeys)
	r := &Rule{File: d.file, Line: n.Line, PartitionBy: DefaultPartitionBy, Skip: "skipPastLastEvent", skip: cep.SkipPastLastEvent()}

	required := func(key string) (keyVal, bool) {
		kv, ok := f[key]
		if !ok {
			d.errorf(n, join(path, key), "missing")
		}
		return kv, ok
	}
	if kv, ok := required("name"); ok {
		if s, ok := d.str(kv.val, join(path, "name")); ok {
			if !ruleNameRE.MatchString(s) {
				d.errorf(kv.val, join(path, "name"), "must be a name of letters, digits, _, . and - starting with a letter, got %q", s)
			}
			r.Name = s
		}
	}
	if kv, ok := required("level"); ok {
		if s, ok := d.oneOf(kv.val, join(path, "level"), string(LevelInfo), string(LevelWarn), string(LevelFatal)); ok {
			r.Level = Level(s)
		}
	}
	if kv, ok := required("scope"); ok {
		if s, ok := d.oneOf(kv.val, join(path, "scope"), string(ScopeJobManager), string(ScopeTaskManager)); ok {
			r.Scope = Scope(s)
		}
	}
	if kv, ok := f["description"]; ok {
		r.Description, _ = d.str(kv.val, join(path, "description"))
	}
	if kv, ok := f["metrics"]; ok {
		p := join(path, "metrics")
		if ms, ok := d.strList(kv.val, p); ok {
			for i, m := range ms {
				if !metricNameRE.MatchString(m) {
					d.errorf(kv.val, fmt.Sprintf("%s[%d]", p, i), "must be a metric name, got %q", m)
				}
			}
			if len(ms) == 0 {
				d.errorf(kv.val, p, "must name at least one metric (leave it out to see every metric of the scope)")
			}
			r.Metrics = ms
		}
	}
	if kv, ok := f["partitionBy"]; ok {
		p := join(path, "partitionBy")
		if ks, ok := d.strList(kv.val, p); ok {
			for i, k := range ks {
				if !identRE.MatchString(k) {
					d.errorf(kv.val, fmt.Sprintf("%s[%d]", p, i), "must be an event field or label name, got %q", k)
				}
			}
			r.PartitionBy = ks
		}
	}
	if kv, ok := f["within"]; ok {
		r.Within, _ = d.duration(kv.val, join(path, "within"))
	}
	var skipNode *yaml.Node
	if kv, ok := f["skip"]; ok {
		skipNode = kv.val
		if s, ok := d.str(kv.val, join(path, "skip")); ok {
			st, err := parseSkip(s)
			if err != nil {
				d.errorf(kv.val, join(path, "skip"), "%v", err)
			} else {
				r.Skip, r.skip = s, st
			}
		}
	}
	if kv, ok := f["resolveAfter"]; ok {
		r.ResolveAfter, _ = d.duration(kv.val, join(path, "resolveAfter"))
	}
	if kv, ok := f["disabled"]; ok {
		r.Disabled, _ = d.boolean(kv.val, join(path, "disabled"))
	}
	var patNode *yaml.Node
	var stageNodes []stageNodes
	if kv, ok := required("pattern"); ok {
		patNode = kv.key
		items := d.list(kv.val, join(path, "pattern"), maxStages)
		if kv.val.Kind == yaml.SequenceNode && len(items) == 0 {
			d.errorf(kv.val, join(path, "pattern"), "must have at least one event")
		}
		seen := map[string]int{}
		for i, sn := range items {
			sp := fmt.Sprintf("%s.pattern[%d]", path, i)
			st, nodes := d.stage(sn, sp, i, i == len(items)-1, r.Within > 0)
			if st.Name != "" {
				if line, dup := seen[st.Name]; dup {
					d.errorf(nodes.name, sp+".name", "duplicate event name %q (first at line %d)", st.Name, line)
				}
				seen[st.Name] = sn.Line
			}
			r.Pattern = append(r.Pattern, st)
			stageNodes = append(stageNodes, nodes)
		}
		d.checkSequence(r, path, stageNodes)
		if len(stageNodes) > 0 && !slices.Contains(r.StageNames(), "") {
			d.checkConditions(r, stageNodes)
		}
	}
	if kv, ok := f["output"]; ok {
		items := d.list(kv.val, join(path, "output"), maxOutputs)
		names := map[string]bool{}
		for i, on := range items {
			op := fmt.Sprintf("%s.output[%d]", path, i)
			s, ok := d.str(on, op)
			if !ok {
				continue
			}
			o, err := parseOutput(s)
			if err != nil {
				d.errorf(on, op, "%v", err)
				continue
			}
			if names[o.Name] {
				d.errorf(on, op, "duplicate output name %q", o.Name)
				continue
			}
			names[o.Name] = true
			o.Line = on.Line
			if !slices.Contains(r.StageNames(), "") {
				if o.prog, err = compileOutput(o.Expr, r.StageNames()); err != nil {
					d.errorf(on, op, "%v", err)
					continue
				}
			}
			r.Outputs = append(r.Outputs, o)
		}
	}
	if kv, ok := f["action"]; ok {
		r.Action = d.action(kv.val, join(path, "action"))
	}
	if len(d.errs) > before {
		return nil
	}
	if skipNode != nil {
		if name := skipStageName(r.Skip); name != "" && !slices.Contains(r.StageNames(), name) {
			d.errorf(skipNode, join(path, "skip"), "names no event of the pattern: %q", name)
			return nil
		}
	}
	if r.ResolveAfter == 0 {
		r.ResolveAfter = DefaultResolveAfter
		if r.Within > 0 {
			r.ResolveAfter = 2 * r.Within
		}
	}
	if !d.compile(r, path, patNode, stageNodes) {
		return nil
	}
	return r
}

// stageNodes are the nodes of one stage that errors found later point at.
type stageNodes struct {
	stage, name *yaml.Node
	keys        map[string]keyVal
	conds       []condNode // where, or..., until
}

type condNode struct {
	node *yaml.Node
	path string
	src  string
}

// checkSequence reports what Flink rejects about two neighbouring events,
// at the key that makes the second one invalid.
func (d *decoder) checkSequence(r *Rule, path string, nodes []stageNodes) {
	for i := 1; i < len(r.Pattern); i++ {
		prev, cur := r.Pattern[i-1], r.Pattern[i]
		p := fmt.Sprintf("%s.pattern[%d]", path, i)
		prevOptional := prev.Optional || prev.TimesTo > 0 && prev.TimesFrom == 0
		if kv, ok := nodes[i].keys["not"]; ok && cur.Not && prevOptional {
			d.errorf(kv.key, p+".not", "a negative event cannot follow an optional one (%s)", prev.Name)
		}
		if prev.Greedy {
			for _, k := range []string{"optional", "times"} {
				if kv, ok := nodes[i].keys[k]; ok && (cur.Optional || cur.TimesTo > 0 && cur.TimesFrom == 0) {
					d.errorf(kv.key, p+"."+k, "an optional event cannot follow a greedy one (%s)", prev.Name)
					break
				}
			}
		}
	}
}

// closest returns the known key nearest to key, if it is a likely typo.
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if dist := editDistance(strings.ToLower(key), strings.ToLower(k)); dist < bestD {
			best, bestD = k, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// stage decodes one event of a pattern and checks what can be checked on
// it alone; the automaton compiler checks the sequence.
func (d *decoder) stage(n *yaml.Node, path string, idx int, last, hasWithin bool) (Stage, stageNodes) {
	st := Stage{Line: n.Line, Contiguity: cep.Relaxed}
	nodes := stageNodes{stage: n}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "an event must be a mapping with name and where, got %s", describe(n))
		return st, nodes
	}
	f := d.fields(n, path, stageKeys)
	nodes.keys = f
	if kv, ok := f["name"]; !ok {
		d.errorf(n, path+".name", "missing")
	} else if s, ok := d.str(kv.val, path+".name"); ok {
		nodes.name = kv.val
		if !identRE.MatchString(s) {
			d.errorf(kv.val, path+".name", "must be an identifier like e1, got %q", s)
		} else if _, err := cep.Begin(s).Where("true").Compile(); err != nil {
			d.errorf(kv.val, path+".name", "%s", cepMessage(err))
		} else {
			st.Name = s
		}
	}
	if kv, ok := f["where"]; !ok {
		d.errorf(n, path+".where", "missing: every event needs a condition (write true to accept any event)")
	} else if ws, ok := d.strList(kv.val, path+".where"); ok {
		if len(ws) == 0 {
			d.errorf(kv.val, path+".where", "must have at least one condition")
		}
		st.Where = ws
		for i, s := range ws {
			cn, cp := kv.val, path+".where"
			if kv.val.Kind == yaml.SequenceNode {
				cn, cp = kv.val.Content[i], fmt.Sprintf("%s[%d]", cp, i)
			}
			nodes.conds = append(nodes.conds, condNode{cn, cp, s})
		}
	}
	if kv, ok := f["or"]; ok {
		if ors, ok := d.strList(kv.val, path+".or"); ok {
			st.Or = ors
			for i, s := range ors {
				cn := kv.val
				if kv.val.Kind == yaml.SequenceNode {
					cn = kv.val.Content[i]
				}
				nodes.conds = append(nodes.conds, condNode{cn, fmt.Sprintf("%s.or[%d]", path, i), s})
			}
		}
	}
	if kv, ok := f["contiguity"]; ok {
		p := path + ".contiguity"
		if idx == 0 {
			d.errorf(kv.key, p, "the first event has no predecessor; contiguity applies from the second event on")
		} else if s, ok := d.oneOf(kv.val, p, "next", "followedBy", "followedByAny"); ok {
			st.Contiguity = map[string]cep.Contiguity{"next": cep.Strict, "followedBy": cep.Relaxed, "followedByAny": cep.NonDeterministicRelaxed}[s]
		}
	}
	if kv, ok := f["not"]; ok {
		p := path + ".not"
		if b, ok := d.boolean(kv.val, p); ok && b {
			switch {
			case idx == 0:
				d.errorf(kv.key, p, "the first event cannot be negative; a pattern begins with an event that happened")
			case st.Contiguity == cep.NonDeterministicRelaxed:
				d.errorf(kv.key, p, "not applies with contiguity next (notNext) or followedBy (notFollowedBy), not followedByAny")
			case last && st.Contiguity == cep.Relaxed && !hasWithin:
				d.errorf(kv.key, p, "a pattern that ends with a notFollowedBy event needs within: the match is emitted when the window closes")
			default:
				st.Not = true
			}
		}
	}
	// quantifiers: at most one; none on a NOT event
	var quant *yaml.Node
	for _, k := range quantKeys {
		kv, ok := f[k]
		if !ok {
			continue
		}
		p := path + "." + k
		if quant != nil {
			d.errorf(kv.key, p, "only one of times, timesOrMore and oneOrMore applies to an event (%s already at line %d)", quant.Value, quant.Line)
			continue
		}
		quant = kv.key
		if st.Not {
			d.errorf(kv.key, p, "a negative (not) event cannot be quantified")
			continue
		}
		switch k {
		case "times":
			st.TimesFrom, st.TimesTo = d.times(kv.val, p)
		case "timesOrMore":
			st.TimesOrMore, _ = d.intRange(kv.val, p, 1, maxCount)
		case "oneOrMore":
			if b, ok := d.boolean(kv.val, p); ok && b {
				st.TimesOrMore = 1
			} else if ok {
				quant = nil
			}
		}
	}
	// a quantifier that did not decode has been reported; the checks below
	// assume it would have been valid rather than pile errors on it
	invalidQuant := quant != nil && st.TimesTo == 0 && st.TimesOrMore == 0
	looping := st.TimesOrMore > 0 || invalidQuant
	multi := looping || st.TimesTo > 1
	flag := func(key string, check func(kv keyVal, p string) bool) bool {
		kv, ok := f[key]
		if !ok {
			return false
		}
		p := path + "." + key
		b, ok := d.boolean(kv.val, p)
		if !ok || !b {
			return false
		}
		return check(kv, p)
	}
	st.Optional = flag("optional", func(kv keyVal, p string) bool {
		if st.Not {
			d.errorf(kv.key, p, "a negative (not) event cannot be optional")
			return false
		}
		if st.TimesTo > 0 && st.TimesFrom == 0 {
			d.errorf(kv.key, p, "times [0, N] already makes the event optional")
			return false
		}
		return true
	})
	st.Greedy = flag("greedy", func(kv keyVal, p string) bool {
		switch {
		case st.Not || !multi:
			d.errorf(kv.key, p, "greedy applies only to an event with times or oneOrMore/timesOrMore")
			return false
		case last:
			d.errorf(kv.key, p, "a greedy event cannot end the pattern: it would never complete a match")
			return false
		}
		return true
	})
	st.Consecutive = flag("consecutive", func(kv keyVal, p string) bool {
		if st.Not || !multi {
			d.errorf(kv.key, p, "consecutive applies only to an event with times or oneOrMore/timesOrMore")
			return false
		}
		return true
	})
	st.AllowCombinations = flag("allowCombinations", func(kv keyVal, p string) bool {
		switch {
		case st.Not || !multi:
			d.errorf(kv.key, p, "allowCombinations applies only to an event with times or oneOrMore/timesOrMore")
			return false
		case st.Consecutive:
			d.errorf(kv.key, p, "consecutive and allowCombinations exclude each other")
			return false
		case st.Greedy:
			d.errorf(kv.key, p, "greedy and allowCombinations exclude each other")
			return false
		}
		return true
	})
	if kv, ok := f["until"]; ok {
		p := path + ".until"
		if !looping {
			d.errorf(kv.key, p, "until applies only to a looping event (oneOrMore or timesOrMore)")
		} else if s, ok := d.str(kv.val, p); ok {
			st.Until = s
			nodes.conds = append(nodes.conds, condNode{kv.val, p, s})
		}
	}
	return st, nodes
}

// times decodes times: N or times: [from, to].
func (d *decoder) times(n *yaml.Node, path string) (from, to int) {
	if n.Kind == yaml.SequenceNode {
		if len(n.Content) != 2 {
			d.errorf(n, path, "must be a count N or a range [from, to], got a list of %d", len(n.Content))
			return 0, 0
		}
		f, ok1 := d.intRange(deref(n.Content[0]), path+"[0]", 0, maxCount)
		t, ok2 := d.intRange(deref(n.Content[1]), path+"[1]", 1, maxCount)
		if !ok1 || !ok2 {
			return 0, 0
		}
		if t < f {
			d.errorf(n, path, "the range [%d, %d] ends before it starts", f, t)
			return 0, 0
		}
		return f, t
	}
	v, ok := d.intRange(n, path, 1, maxCount)
	if !ok {
		return 0, 0
	}
	return v, v
}

func (d *decoder) action(n *yaml.Node, path string) *Action {
	a := &Action{Cooldown: DefaultActionCooldown}
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		// the short form: action: savepoint
		if !d.actionType(n, path, a) {
			return nil
		}
		if a.Type == ActionRescale {
			d.errorf(n, path, "rescale needs params: write action: {type: rescale, params: {parallelism: N}}")
			return nil
		}
		return a
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be an action name or a mapping with type, got %s", describe(n))
		return nil
	}
	f := d.fields(n, path, actKeys)
	kv, ok := f["type"]
	if !ok {
		d.errorf(n, path+".type", "missing")
		return nil
	}
	if !d.actionType(kv.val, path+".type", a) {
		return nil
	}
	if kv, ok := f["dryRun"]; ok {
		a.DryRun, _ = d.boolean(kv.val, path+".dryRun")
	}
	if kv, ok := f["cooldown"]; ok {
		a.Cooldown, _ = d.duration(kv.val, path+".cooldown")
	}
	if kv, ok := f["params"]; ok {
		d.actionParams(kv.val, path+".params", a)
	}
	if a.Type == ActionRescale && a.Params["parallelism"] == nil && a.Params["factor"] == nil {
		d.errorf(n, path+".params", "rescale needs params.parallelism (the new parallelism) or params.factor (a multiplier)")
	}
	return a
}

func (d *decoder) actionType(n *yaml.Node, path string, a *Action) bool {
	s, ok := d.oneOf(n, path, string(ActionMigrateToPebble), string(ActionMigrateToHeap), string(ActionSavepoint), string(ActionRestart), string(ActionRescale))
	a.Type = ActionType(s)
	return ok
}

// actionParams validates the parameters each action takes.
func (d *decoder) actionParams(n *yaml.Node, path string, a *Action) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping, got %s", describe(n))
		return
	}
	var known []string
	switch a.Type {
	case ActionMigrateToPebble, ActionMigrateToHeap:
		known = []string{"keyGroups"}
	case ActionSavepoint:
		known = []string{"targetDirectory"}
	case ActionRescale:
		known = []string{"parallelism", "factor"}
	}
	if len(known) == 0 && len(n.Content) > 0 {
		d.errorf(n, path, "%s takes no parameters", a.Type)
		return
	}
	f := d.fields(n, path, known)
	a.Params = map[string]any{}
	if kv, ok := f["keyGroups"]; ok {
		if s, ok := d.str(kv.val, path+".keyGroups"); ok {
			if err := checkKeyGroups(s); err != nil {
				d.errorf(kv.val, path+".keyGroups", "%v", err)
			} else {
				a.Params["keyGroups"] = s
			}
		}
	}
	if kv, ok := f["targetDirectory"]; ok {
		if s, ok := d.str(kv.val, path+".targetDirectory"); ok {
			a.Params["targetDirectory"] = s
		}
	}
	_, hasP := f["parallelism"]
	_, hasF := f["factor"]
	if hasP && hasF {
		d.errorf(f["factor"].key, path+".factor", "give parallelism or factor, not both")
		return
	}
	if kv, ok := f["parallelism"]; ok {
		if v, ok := d.integer(kv.val, path+".parallelism", 1); ok {
			a.Params["parallelism"] = v
		}
	}
	if kv, ok := f["factor"]; ok {
		var v float64
		if kv.val.Kind != yaml.ScalarNode || (kv.val.ShortTag() != "!!float" && kv.val.ShortTag() != "!!int") || kv.val.Decode(&v) != nil || !(v > 0) || v > 64 {
			d.errorf(kv.val, path+".factor", "must be a number above 0 and at most 64, got %s", describe(kv.val))
		} else {
			a.Params["factor"] = v
		}
	}
}

// checkKeyGroups accepts what the job master's migration endpoint accepts:
// "all" or ranges like "0-63,100".
func checkKeyGroups(s string) error {
	if s == "all" {
		return nil
	}
	if s == "" {
		return errors.New(`must be "all" or key-group ranges like "0-63,100"`)
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return fmt.Errorf(`must be "all" or key-group ranges like "0-63,100", got %q`, s)
		}
	}
	return nil
}

// parseSkip reads the skip strategy forms: noSkip, skipToNext,
// skipPastLastEvent, skipToFirst:NAME, skipToLast:NAME.
func parseSkip(s string) (cep.SkipStrategy, error) {
	switch s {
	case "noSkip":
		return cep.NoSkip(), nil
	case "skipToNext":
		return cep.SkipToNext(), nil
	case "skipPastLastEvent":
		return cep.SkipPastLastEvent(), nil
	}
	kind, name, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if ok && identRE.MatchString(name) {
		switch kind {
		case "skipToFirst":
			return cep.SkipToFirst(name), nil
		case "skipToLast":
			return cep.SkipToLast(name), nil
		}
	}
	return cep.SkipStrategy{}, fmt.Errorf("must be noSkip, skipToNext, skipPastLastEvent, skipToFirst:NAME or skipToLast:NAME, got %q", s)
}

func skipStageName(s string) string {
	if _, name, ok := strings.Cut(s, ":"); ok {
		return strings.TrimSpace(name)
	}
	return ""
}

// cepMessage is the message of a pattern error without the package's
// sentinel prefix, which the field path already conveys.
func cepMessage(err error) string {
	return strings.TrimPrefix(err.Error(), cep.ErrMalformedPattern.Error()+": ")
}
