"""`auxpretrain pretrain`: batches, the training graph, evaluation and profiling, the
single-process run (`run.pretrain`) and the cluster run (`cluster.run_task`)."""
