import pytest
import torch


@pytest.fixture(scope="session")
def devkit(shared_data):
    """The real ELL DevKit model, imported: (featurizer, classifier, categories)."""
    from core.importers.ell import load_ell
    from core.models import load_categories

    d = shared_data / "ell_devkit_model"
    return load_ell(d / "featurizer.ell"), load_ell(d / "classifier.ell"), load_categories(d / "categories.txt")


@pytest.fixture(scope="module")
def one_thread():
    """Many small torch ops: on a busy 2-core machine a second torch thread only spins (8x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
