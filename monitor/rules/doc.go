// Package rules is the monitor's rule language: YAML files that describe
// complex events over metric events, in the form the seed's CEP
// configuration used (an event pattern of named events with conditions,
// quantifiers and contiguity, a time window, output fields), plus a level,
// a scope and an optional action. It parses and validates rule files with
// errors that name the file, the line and the field, and compiles every
// rule onto a monitor/cep automaton.
//
// It owns the language only: it does not read metrics, run the automata or
// raise alerts (package monitor does). docs/RULES.md is the reference of
// the language; configs/rules/ holds the catalogue.
//
// A rule file:
//
//	rules:
//	  - name: TASK_MANAGER_HEAP_MEM_LOAD_TOO_HIGH
//	    level: FATAL
//	    scope: taskmanager
//	    metrics: [heap_load]
//	    within: 90s
//	    pattern:
//	      - name: e1
//	        where: metricsValue >= 0.90
//	        times: 4
//	        consecutive: true
//	    output:
//	      - e1.jobID as jobID
//	      - max(map(e1, .metricsValue)) as peakLoad
//	    action:
//	      type: migrate-to-pebble
//
// Load reads files and directories into a Set; Parse reads one file's
// bytes. Every problem found is reported, each as an *Error; errors.Is(err,
// ErrInvalid) holds for all of them.
package rules
