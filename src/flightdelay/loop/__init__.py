"""loop: what happens around a pull request and after merge (compare, gate, report, promote,
release, deploy, canary, rollback, monitor). Imports core, pipeline and loop; never serving."""
