// Package state owns keyed state: the heap and Pebble backends behind one
// interface, canonical snapshots, live migration between backends, and
// checkpoint storage (local directory, HDFS).
//
// It has no code in this build; the job runtime keeps its window state in the
// job master and checkpoints it itself (package jobrunner).
package state
