"""Loading a registered model: whatever stops it (missing files, code that does not import) is one
clear registry error naming the model, not a traceback from inside MLflow."""

import pytest

from finsent.registry.versions import load_pyfunc
from finsent.tracking import RegistryError


def test_a_model_that_cannot_load_is_a_registry_error(tmp_path):
    with pytest.raises(RegistryError, match="cannot be loaded"):
        load_pyfunc(str(tmp_path / "no-model-here"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {python_function: {loader_module: no_such_module_anywhere}}\n")
    with pytest.raises(RegistryError, match=f"{broken}.*cannot be loaded"):
        load_pyfunc(str(broken))
