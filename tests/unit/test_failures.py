
from abstain.failures import mistake_rows
from abstain.metrics import auroc


def test_mistake_rows_use_correct_vs_wrong(tiny_run, tiny_eval, mnist):
    _, sets = tiny_eval
    test = sets[0]
    y = mnist.y_test[:len(test.logits)]
    rows = {r["detector"]: r for r in mistake_rows(tiny_run, test, y)}
    wrong = test.logits.argmax(1) != y
    assert rows["msp"]["n_mistakes"] == wrong.sum() > 0
    s = test.scores["msp"]
    assert rows["msp"]["auroc"] == auroc(s[~wrong], s[wrong])
    assert rows["msp"]["auroc"] > 0.8          # confidence does flag a weak classifier's errors
