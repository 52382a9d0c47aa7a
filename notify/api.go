package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// RegisterRoutes adds the notifier's REST endpoints to the daemon's /api/v1
// mux (behind its authentication):
//
//	GET    /api/v1/alerts           alert history with notifications and delivery attempts
//	GET    /api/v1/silences         silences; ?state=pending|active|expired
//	POST   /api/v1/silences         create a silence, or change one (body with id)
//	GET    /api/v1/silences/{id}    one silence
//	DELETE /api/v1/silences/{id}    expire a silence
//
// Errors have the daemon's shape: {"error": {"code": …, "message": …}}.
func (n *Notifier) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/alerts", n.getAlerts)
	mux.HandleFunc("GET /api/v1/silences", n.getSilences)
	mux.HandleFunc("POST /api/v1/silences", n.postSilence)
	mux.HandleFunc("GET /api/v1/silences/{id}", n.getSilence)
	mux.HandleFunc("DELETE /api/v1/silences/{id}", n.deleteSilence)
}

// Handler serves the notifier's endpoints alone (for tests and tools); the
// daemon mounts them with RegisterRoutes.
func (n *Notifier) Handler() http.Handler {
	mux := http.NewServeMux()
	n.RegisterRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func (n *Notifier) getAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	aq := AlertQuery{Job: q.Get("job"), Event: q.Get("event")}
	if s := q.Get("state"); s != "" {
		aq.States = strings.Split(strings.ToLower(s), ",")
		for _, st := range aq.States {
			switch st {
			case StateFiring, StateResolved, StateSuppressed, StateActive:
			default:
				writeError(w, http.StatusBadRequest, "bad_parameter", fmt.Sprintf("state: must be firing, resolved, suppressed or active, got %q", st))
				return
			}
		}
	}
	if s := q.Get("level"); s != "" {
		for _, l := range strings.Split(s, ",") {
			lv, err := alert.ParseLevel(l)
			if err != nil {
				writeError(w, http.StatusBadRequest, "bad_parameter", fmt.Sprintf("level: must be FATAL, ERROR, WARN or INFO, got %q", l))
				return
			}
			aq.Levels = append(aq.Levels, string(lv))
		}
	}
	if s := q.Get("since"); s != "" {
		t, err := parseSince(s, n.now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_parameter", "since: "+err.Error())
			return
		}
		aq.Since = t
	}
	aq.Limit = 100
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 10000 {
			writeError(w, http.StatusBadRequest, "bad_parameter", fmt.Sprintf("limit: must be an integer from 1 to 10000, got %q", s))
			return
		}
		aq.Limit = v
	}
	views, err := n.Alerts(r.Context(), aq)
	if err != nil {
		n.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": views})
}

// parseSince reads an RFC 3339 time or a duration back from now (1h, 30m).
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration like 1h", s)
}

func (n *Notifier) getSilences(w http.ResponseWriter, r *http.Request) {
	ss, err := n.Silences(r.Context(), r.URL.Query().Get("state"))
	if errors.Is(err, ErrInvalidSilence) {
		writeError(w, http.StatusBadRequest, "bad_parameter", "state: must be pending, active or expired")
		return
	}
	if err != nil {
		n.internal(w, err)
		return
	}
	now := n.now()
	views := make([]silenceView, len(ss))
	for i, s := range ss {
		views[i] = silenceView{s, s.State(now)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"silences": views})
}

// silenceView is a silence with its state.
type silenceView struct {
	*Silence
	State string `json:"state"`
}

func (n *Notifier) getSilence(w http.ResponseWriter, r *http.Request) {
	s, err := n.Silence(r.Context(), r.PathValue("id"))
	if err != nil {
		n.silenceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, silenceView{s, s.State(n.now())})
}

// silenceRequest is the body of POST /api/v1/silences.
type silenceRequest struct {
	ID        string    `json:"id"`
	Matchers  Matchers  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	Duration  string    `json:"duration"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
}

func (n *Notifier) postSilence(w http.ResponseWriter, r *http.Request) {
	var req silenceRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "body: "+err.Error())
		return
	}
	if req.Duration != "" {
		if !req.EndsAt.IsZero() {
			writeError(w, http.StatusBadRequest, "bad_request", "give endsAt or duration, not both")
			return
		}
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("duration: %q is not a positive duration like 2h", req.Duration))
			return
		}
		start := req.StartsAt
		if start.IsZero() {
			start = n.now()
		}
		req.StartsAt, req.EndsAt = start, start.Add(d)
	}
	s, err := n.PutSilence(r.Context(), Silence{ID: req.ID, Matchers: req.Matchers, StartsAt: req.StartsAt, EndsAt: req.EndsAt,
		CreatedBy: req.CreatedBy, Comment: req.Comment})
	if err != nil {
		n.silenceError(w, err)
		return
	}
	code := http.StatusCreated
	if req.ID != "" {
		code = http.StatusOK
	}
	writeJSON(w, code, silenceView{s, s.State(n.now())})
}

func (n *Notifier) deleteSilence(w http.ResponseWriter, r *http.Request) {
	s, err := n.ExpireSilence(r.Context(), r.PathValue("id"))
	if err != nil {
		n.silenceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, silenceView{s, s.State(n.now())})
}

func (n *Notifier) silenceError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrExpired):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, ErrInvalidSilence), errors.Is(err, ErrBadMatcher):
		writeError(w, http.StatusBadRequest, "invalid_silence", err.Error())
	default:
		n.internal(w, err)
	}
}

func (n *Notifier) internal(w http.ResponseWriter, err error) {
	n.log.WithError(err).Error("store")
	writeError(w, http.StatusInternalServerError, "internal", "internal error: "+err.Error())
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, map[string]apiError{"error": {Code: errCode, Message: msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
