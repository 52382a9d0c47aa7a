//go:build !race

package mlforecast

const raceEnabled = false
