// Package monitor collects job metrics and runs complex-event-processing
// rules over them, raising the events of the rule catalogue.
//
// It has no code in this build; the daemon records the lifecycle events of
// jobs only (package supportlayer).
package monitor
