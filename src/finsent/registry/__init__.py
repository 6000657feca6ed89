"""The MLflow model registry: registering a trained model with its lineage behind the gate
(``register``), versions and aliases (``versions``), the promotion lock (``locks``), the pyfunc that
every registered version carries (``pyfunc``), and the operator commands (``ops``).
"""
