import subprocess
import sys


def test_importing_the_search_core_pulls_in_no_heavy_package():
    code = (
        "import sys, cotgen.search, cotgen.search.mcts, cotgen.search.ratings;"
        "print(sorted(m for m in ('torch', 'pyarrow', 'transformers', 'datasets', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
