// Package yarn deploys each job as one YARN application (deployer `yarn`):
// the ApplicationMaster is the job master, `tidewatch am`, started by a
// NodeManager from the runtime binary and the job spec staged on HDFS.
//
// # Deploy
//
// Deploy stages the daemon's binary (reused while its content hash is
// unchanged) and the spec as job.yaml under <staging>/<application-id>/, asks
// the ResourceManager for an application id and submits an application of
// type TIDEWATCH named after the job, sized by the spec's resources, with
// two tags: tidewatch-job-<job-id> and tidewatch-deploy-<job-id>-<attempt>.
// The deployment tag makes submission crash-safe: before submitting, Deploy
// looks for an application carrying it and adopts one it finds, and a
// handle stored before its application id (the daemon stopped mid-deploy) is
// resolved by it. Live applications of earlier deployments of the same job
// are killed first, so one job never runs twice.
//
// # Observe
//
// One watch cycle costs one RM request for all jobs: the watcher calls
// BeginCycle, and the cycle's first Observe lists the user's live TIDEWATCH
// applications; every Observe of the cycle reads that listing, and an
// application missing from it (ended, or submitted after the listing) costs
// one report, kept until the next listing. A deployment is alive until its
// application is FINISHED, FAILED or KILLED; its endpoint is the RM proxy's
// tracking URL (…/proxy/<application-id>/) once the AM has registered. The
// AM unregisters with a `tidewatch-result {json}` line in its diagnostics,
// parsed into the status's final state, savepoint and error; an application
// that ended without one (killed, or its AM failed on every attempt) reports
// the RM's diagnostics instead. The staging directory of an ended
// application is removed.
//
// # Logs
//
// The job master's log is jobmaster.log in the AM container's log directory
// on its NodeManager. Without log aggregation the daemon has no copy to
// stream, so Logs returns the application's state, diagnostics and log
// links as text.
package yarn
