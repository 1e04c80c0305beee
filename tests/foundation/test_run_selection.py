"""What `customer360 run` materialises: the churn assets only once KKBox files landed."""

from customer360.cli.runner import selection_for_landing
from customer360.definitions import build_definitions
from resources.landing import LocalLandingZone


def test_churn_assets_run_only_when_kkbox_files_landed(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    graph = build_definitions().resolve_asset_graph()
    landing = LocalLandingZone(root=str(tmp_path / "landing"))
    selection = selection_for_landing(landing)
    assert selection is not None
    chosen = {k.to_user_string() for k in selection.resolve(graph)}
    everything = {k.to_user_string() for k in graph.materializable_asset_keys}
    left_out = everything - chosen
    assert "gold/customer_churn_risk" in left_out and "churn/model" in left_out
    assert all(k.startswith("churn/") or k == "gold/customer_churn_risk" for k in left_out)
    assert {"gold/customer_profile", "dynamics/crc33_customer"} <= chosen
    (tmp_path / "landing" / "kkbox").mkdir(parents=True)
    (tmp_path / "landing" / "kkbox" / "members_v3.csv").write_text("msno\n")
    assert selection_for_landing(landing) is None
