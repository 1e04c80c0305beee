"""Profit curve, threshold choice and risk bands, with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from customer360.churn.enrichment import predictions_to_customers, risk_band
from customer360.churn.ids import msno_column, msno_for_customer
from customer360.churn.targeting import RetentionEconomics, choose_threshold, profit_curve

ECONOMICS = RetentionEconomics(customer_value=100.0, offer_cost=10.0, acceptance_rate=0.5)


def test_expected_and_realised_profit_curves_and_the_chosen_threshold():
    # Expected profit per member = p * 0.5 * 100 - 10: 35, 15, 0, -5 (break-even p = 0.2).
    curve = profit_curve([0.2, 0.9, 0.1, 0.5], ECONOMICS, labels=[1, 1, 0, 0])
    assert curve["threshold"].tolist()[:4] == [0.1, 0.2, 0.5, 0.9]
    assert curve["threshold"].iloc[-1] > 0.9  # the "nobody" threshold
    assert curve["targeted"].tolist() == [4, 3, 2, 1, 0]
    assert curve["expected_profit"].tolist() == pytest.approx([45, 50, 50, 35, 0])
    # Realised: churners (0.9 and 0.2) give 40 each, others cost 10.
    assert curve["realised_profit"].tolist() == pytest.approx([60, 70, 30, 40, 0])
    expected = choose_threshold(curve)
    assert (expected.threshold, expected.profit, expected.targeted) == (0.5, 50.0, 2)
    assert ECONOMICS.break_even_probability == pytest.approx(0.2)
    realised = choose_threshold(curve, basis="realised")
    assert (realised.threshold, realised.profit, realised.targeted) == (0.2, 70.0, 3)


def test_nobody_is_targeted_when_no_offer_pays():
    curve = profit_curve(np.array([0.01, 0.02]), ECONOMICS)
    choice = choose_threshold(curve)
    assert (choice.targeted, choice.profit) == (0, 0.0)
    assert choice.threshold > 0.02


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="acceptance_rate"):
        RetentionEconomics(acceptance_rate=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        profit_curve([0.5, 1.5], ECONOMICS)
    with pytest.raises(ValueError, match="labels has 1 values for 2"):
        profit_curve([0.5, 0.4], ECONOMICS, labels=[1])


def test_risk_bands_relative_to_the_threshold():
    assert [risk_band(p, 0.4) for p in (0.4, 0.39, 0.2, 0.19, 0.0, 1.0)] == [
        "high", "medium", "medium", "low", "low", "high",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="threshold"):
        risk_band(0.5, 0)


def test_msno_of_a_customer_and_spark_mapping(spark):
    msno = msno_for_customer(42)
    assert msno == msno_for_customer(42) and len(msno) == 44 and msno.endswith("=")
    assert msno != msno_for_customer(43)
    customers = spark.createDataFrame([(42,), (43,), (44,)], "customer_id long")
    predictions = spark.createDataFrame(
        [(msno_for_customer(42), 0.5), (msno_for_customer(43), 0.1), ("other", 0.9)],
        "msno string, churn_probability double",
    )
    spark_msno = customers.select(msno_column("customer_id").alias("msno")).collect()
    assert [r["msno"] for r in spark_msno] == [msno_for_customer(c) for c in (42, 43, 44)]
    mapped = predictions_to_customers(predictions, customers, threshold=0.4).collect()
    assert sorted(tuple(r) for r in mapped) == [
        (42, msno_for_customer(42), 0.5, "high"),
        (43, msno_for_customer(43), 0.1, "low"),
    ]
