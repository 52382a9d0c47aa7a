package hadoopproto

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadID reports a YARN id string that does not follow HADOOP_PROTOCOLS.md §2.3.
var ErrBadID = errors.New("hadoopproto: malformed YARN id")

// ContainerIDBitmask selects the sequence number in ContainerIdProto.id; the
// bits above it are the RM epoch.
const ContainerIDBitmask = 0xffffffffff

// ApplicationIDString formats an application id: application_<ts>_<id4>.
func ApplicationIDString(a *ApplicationIdProto) string {
	return fmt.Sprintf("application_%d_%04d", a.GetClusterTimestamp(), a.GetId())
}

// AttemptIDString formats an attempt id: appattempt_<ts>_<id4>_<attempt6>.
// It is also the user name the RM and NM see for AMRM and NM tokens.
func AttemptIDString(a *ApplicationAttemptIdProto) string {
	app := a.GetApplicationId()
	return fmt.Sprintf("appattempt_%d_%04d_%06d", app.GetClusterTimestamp(), app.GetId(), a.GetAttemptId())
}

// ContainerIDString formats a container id:
// container_[e<epoch2>_]<ts>_<app4>_<attempt2>_<seq6>.
func ContainerIDString(c *ContainerIdProto) string {
	att := c.GetAppAttemptId()
	app := att.GetApplicationId()
	id := c.GetId()
	epoch := id >> 40
	seq := id & ContainerIDBitmask
	var sb strings.Builder
	sb.WriteString("container_")
	if epoch > 0 {
		fmt.Fprintf(&sb, "e%02d_", epoch)
	}
	fmt.Fprintf(&sb, "%d_%04d_%02d_%06d", app.GetClusterTimestamp(), app.GetId(), att.GetAttemptId(), seq)
	return sb.String()
}

// ParseContainerID parses the text form of a container id, as found in the
// CONTAINER_ID environment variable. Like Java it fills only app_attempt_id
// and id.
func ParseContainerID(s string) (*ContainerIdProto, error) {
	rest, ok := strings.CutPrefix(s, "container_")
	if !ok {
		return nil, fmt.Errorf("%w: %q has no container_ prefix", ErrBadID, s)
	}
	parts := strings.Split(rest, "_")
	var epoch int64
	if len(parts) == 5 && strings.HasPrefix(parts[0], "e") {
		e, err := strconv.ParseInt(parts[0][1:], 10, 32)
		if err != nil || e < 0 {
			return nil, fmt.Errorf("%w: bad epoch in %q", ErrBadID, s)
		}
		epoch = e
		parts = parts[1:]
	}
	if len(parts) != 4 {
		return nil, fmt.Errorf("%w: %q", ErrBadID, s)
	}
	ts, err1 := strconv.ParseInt(parts[0], 10, 64)
	app, err2 := strconv.ParseInt(parts[1], 10, 32)
	att, err3 := strconv.ParseInt(parts[2], 10, 32)
	seq, err4 := strconv.ParseInt(parts[3], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil || ts < 0 || app < 0 || att < 0 || seq < 0 || seq > ContainerIDBitmask {
		return nil, fmt.Errorf("%w: %q", ErrBadID, s)
	}
	return &ContainerIdProto{
		AppAttemptId: &ApplicationAttemptIdProto{
			ApplicationId: &ApplicationIdProto{Id: ptr(int32(app)), ClusterTimestamp: ptr(ts)},
			AttemptId:     ptr(int32(att)),
		},
		Id: ptr(epoch<<40 | seq),
	}, nil
}

func ptr[T any](v T) *T { return &v }
