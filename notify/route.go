package notify

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// route is a compiled Route: its matchers, its receiver and its timings, with
// what it inherits from its parents filled in.
type route struct {
	id             string // path in the tree: "0", "0.1", "0.1.0"
	receiver       string
	matchers       Matchers
	groupBy        []string
	groupAll       bool
	groupWait      time.Duration
	groupInterval  time.Duration
	repeatInterval time.Duration
	cont           bool
	children       []*route
}

// compileRoute compiles a validated route tree; parent is nil for the root.
func compileRoute(r Route, parent *route, id string) (*route, error) {
	c := &route{id: id, receiver: r.Receiver, cont: r.Continue}
	if parent != nil {
		if c.receiver == "" {
			c.receiver = parent.receiver
		}
		c.groupBy, c.groupAll = parent.groupBy, parent.groupAll
		c.groupWait, c.groupInterval, c.repeatInterval = parent.groupWait, parent.groupInterval, parent.repeatInterval
	}
	if r.GroupBy != nil {
		c.groupBy, c.groupAll = r.GroupBy, len(r.GroupBy) == 1 && r.GroupBy[0] == "..."
	}
	if r.GroupWait != nil {
		c.groupWait = *r.GroupWait
	}
	if r.GroupInterval != nil {
		c.groupInterval = *r.GroupInterval
	}
	if r.RepeatInterval != nil {
		c.repeatInterval = *r.RepeatInterval
	}
	anyOf := func(name string, vals []string, upper bool) error {
		if len(vals) == 0 {
			return nil
		}
		q := make([]string, len(vals))
		for i, v := range vals {
			if upper {
				v = strings.ToUpper(v)
			}
			q[i] = regexp.QuoteMeta(v)
		}
		m, err := NewMatcher(MatchRegexp, name, strings.Join(q, "|"))
		if err != nil {
			return err
		}
		c.matchers = append(c.matchers, m)
		return nil
	}
	if err := anyOf(alert.LabelLevel, r.Levels, true); err != nil {
		return nil, err
	}
	if err := anyOf(alert.LabelJob, r.Jobs, false); err != nil {
		return nil, err
	}
	if err := anyOf(alert.LabelEvent, r.Events, false); err != nil {
		return nil, err
	}
	for _, s := range r.Matchers {
		ms, err := ParseMatchers(s)
		if err != nil {
			return nil, err
		}
		c.matchers = append(c.matchers, ms...)
	}
	for i, sub := range r.Routes {
		cr, err := compileRoute(sub, c, fmt.Sprintf("%s.%d", id, i))
		if err != nil {
			return nil, err
		}
		c.children = append(c.children, cr)
	}
	return c, nil
}

// match returns the routes an alert goes to, as Alertmanager decides: the
// first matching child (and the following ones while matching children say
// continue), or this route if no child matches.
func (r *route) match(ls alert.Labels) []*route {
	if !r.matchers.Matches(ls) {
		return nil
	}
	var all []*route
	for _, c := range r.children {
		m := c.match(ls)
		all = append(all, m...)
		if m != nil && !c.cont {
			break
		}
	}
	if len(all) == 0 {
		all = append(all, r)
	}
	return all
}

// groupLabels are the labels of an alert that name its group on this route.
func (r *route) groupLabels(ls alert.Labels) alert.Labels {
	if r.groupAll {
		return ls.Clone()
	}
	out := alert.Labels{}
	for _, n := range r.groupBy {
		if v, ok := ls[n]; ok {
			out[n] = v
		}
	}
	return out
}

// groupKey identifies an aggregation group: route, receiver, group labels.
func (r *route) groupKey(groupLabels alert.Labels) string {
	return r.id + ":" + r.receiver + ":" + groupLabels.String()
}
