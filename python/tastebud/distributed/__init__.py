"""Scale-out on Dask: batch recommendation, exact evaluation and (block) ALS training.

Install with ``pip install 'tastebud[dask]'``. Every entry point takes ``client=``:

* a ``distributed.Client`` you created, e.g. ``Client("tcp://scheduler-host:8786")`` for a
  running scheduler (``dask scheduler`` + ``dask worker tcp://scheduler-host:8786`` on each
  machine, all with the same tastebud installed);
* a scheduler address string (connected for the call, closed after);
* ``None``: a LocalCluster of 2 worker processes x 1 thread on 127.0.0.1 for the call.

Models travel to workers as numpy arrays plus a JSON header (the ``save`` format, in
memory): no model object or code is pickled; workers rebuild the model from the tastebud
installed on them.
"""

from tastebud.distributed._als import fit_als
from tastebud.distributed._cluster import local_cluster
from tastebud.distributed._evaluate import evaluate
from tastebud.distributed._recommend import recommend_all
from tastebud.distributed._state import model_from_state, model_state

__all__ = [
    "evaluate",
    "fit_als",
    "local_cluster",
    "model_from_state",
    "model_state",
    "recommend_all",
]
