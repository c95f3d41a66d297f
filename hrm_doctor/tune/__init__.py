"""`hrm-doctor tune`: a doctor-guided hyperparameter search (Optuna is the engine).

Each trial is a real `hrm-train` run watched by the same rule engine as `hrm-doctor watch`; a
critical finding prunes it and is stored on the trial. Optuna and pandas are imported lazily.
"""
