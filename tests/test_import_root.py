"""One import root: after installation the only top-level name recaffe adds is ``recaffe``, so a user's
own ``tools.py`` / ``models/`` / ``solver.py`` beside a legacy script win (BVLC's multilabel example keeps a
``tools.py`` with ``CaffeSolver`` next to its script)."""
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_NAMES = ("tools", "models", "solver", "protos", "netspec")


def _run(args, cwd, env_extra=None):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(env_extra or {})
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _user_project(tmp_path):
    """A legacy script beside its own tools.py, models/ package and solver.py."""
    (tmp_path / "tools.py").write_text("class CaffeSolver:\n    marker = 'user tools'\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("marker = 'user models'\n")
    (tmp_path / "solver.py").write_text("marker = 'user solver'\n")
    script = tmp_path / "legacy.py"
    script.write_text(textwrap.dedent("""
        import caffe
        import tools, models, solver
        from caffe import layers as L
        print(tools.CaffeSolver.marker, models.marker, solver.marker, sep='|')
        n = caffe.NetSpec()
        n.data = L.Input(shape=dict(dim=[1, 2]))
        n.ip = L.InnerProduct(n.data, num_output=3)
        print(str(n.to_proto()).count('InnerProduct'))
    """))
    return script


def test_installed_top_level_names_are_recaffe_only(tmp_path):
    """Outside the repository the generic folder names are not importable; recaffe.* is."""
    code = ("import importlib.util as u, recaffe.netspec, recaffe.tools, recaffe.models, recaffe.solver, "
            "recaffe.protos\n"
            f"print(','.join(n for n in {USER_NAMES!r} if u.find_spec(n) is not None))")
    r = _run([sys.executable, "-c", code], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_user_modules_beside_a_script_win_through_the_launcher(tmp_path):
    script = _user_project(tmp_path)
    r = _run([sys.executable, os.path.join(REPO, "tools", "pycaffe"), str(script)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["user tools|user models|user solver", "1"]


def test_user_modules_win_with_recaffe_imported_as_caffe(tmp_path):
    """The same project with ``import recaffe as caffe`` and plain python."""
    script = _user_project(tmp_path)
    script.write_text(script.read_text().replace("import caffe\n", "import recaffe as caffe\n")
                      .replace("from caffe import layers", "from recaffe import layers"))
    r = _run([sys.executable, str(script)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["user tools|user models|user solver", "1"]
