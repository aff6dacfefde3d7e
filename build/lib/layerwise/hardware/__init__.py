"""Where it runs: HardwareSpec and LinkSpec, profile lookup; profiles/*.yaml ship as
package data."""
