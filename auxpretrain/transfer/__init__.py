"""Transfer into downstream models: restore by name and shape with a report (`restore`), the
graph-level API for your own graphs (`graph_api`), the task model and its training
(`task_graph`, `training_run`, `fine_tuning`), saved models (`saved`) and the `TextClassifier`
estimator (`classifier`, `shared`).

`from auxpretrain.transfer import fine_tune, load_model, ...` keeps working (the names are
loaded on first use); `import auxpretrain as ap` gives them all.
"""

_NAMES = {"fine_tune": "fine_tuning", "TransferResult": "fine_tuning", "check_settings": "fine_tuning",
          "format_auto_table": "fine_tuning", "TaskModel": "saved", "load_model": "saved",
          "save_model": "saved", "TextClassifier": "classifier"}


def __getattr__(name):
    module = _NAMES.get(name)
    if module is None:
        if name == "TransferConfig":
            from auxpretrain.config import TransferConfig
            return TransferConfig
        raise AttributeError(f"module 'auxpretrain.transfer' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"auxpretrain.transfer.{module}"), name)
