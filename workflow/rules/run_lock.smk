# One run per results folder (src/hpcml/core/runlock.py). Snakemake calls these handlers
# only in the main process of a run that executes jobs: not in jobs (they get --no-hooks),
# not for -n, --lint, --report, --summary, --list-*, nor when nothing is to be done.
from hpcml.core import runlock

RUN_LOCK = runlock.RunLock(RESULTS)


onstart:
    try:
        RUN_LOCK.take()
    except (runlock.ResultsInUse, OSError) as error:
        raise WorkflowError(str(error))


onsuccess:
    RUN_LOCK.release()


onerror:
    RUN_LOCK.release()
