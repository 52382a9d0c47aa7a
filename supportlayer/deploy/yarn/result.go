package yarn

import (
	"strings"
	"unicode/utf8"

	"github.com/tidewatch/tidewatch/yarn/am"
)

// ResultPrefix starts the line of an application's diagnostics in which the
// job master (`tidewatch am`, package yarn/am) reports how the job ended when
// it unregisters:
//
//	tidewatch-result {"state":"FINISHED","savepoint":"hdfs://…","error":""}
const ResultPrefix = am.ResultPrefix

// result is the job master's own record of how the job ended.
type result = am.Result

// parseResult finds the result line in an application's diagnostics.
func parseResult(diagnostics string) (result, bool) { return am.ParseResult(diagnostics) }

// maxDiagnostics bounds the RM diagnostics carried into a Status: they end up
// in the deployment's diagnostics and in event messages (2048 bytes each),
// and a failed application's can hold a stack trace.
const maxDiagnostics = 1024

// clip shortens s to at most n bytes of valid UTF-8, marking the cut, and
// folds its lines into one.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

func joinDiag(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
