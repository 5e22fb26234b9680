/* metrics.c: accuracy and F1 for classification (see metrics.h). One pass per class keeps
 * it allocation-free; evaluation sets are small enough that O(n * classes) is nothing. */
#include "loraft/metrics.h"

/* F1 of class c = 2 tp / (2 tp + fp + fn); 0 where undefined. *seen: c occurs at all. */
static double class_f1(const int *pred, const int *label, int n, int c, int *seen) {
    long tp = 0, fp = 0, fn = 0;
    for (int i = 0; i < n; i++) {
        tp += pred[i] == c && label[i] == c;
        fp += pred[i] == c && label[i] != c;
        fn += pred[i] != c && label[i] == c;
    }
    *seen = tp + fp + fn > 0;
    return *seen ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
}

void metrics_classification(const int *pred, const int *label, int n, int num_labels,
                            double mean_loss, ClassMetrics *out) {
    long correct = 0;
    for (int i = 0; i < n; i++)
        correct += pred[i] == label[i] && label[i] >= 0 && label[i] < num_labels;
    out->loss = mean_loss;
    out->n = n;
    out->accuracy = n > 0 ? (double)correct / n : 0.0;
    int seen;
    if (num_labels == 2) {
        out->f1 = class_f1(pred, label, n, 1, &seen);
        return;
    }
    double sum = 0;
    int classes = 0;
    for (int c = 0; c < num_labels; c++) {
        double f = class_f1(pred, label, n, c, &seen);
        sum += f;
        classes += seen;
    }
    out->f1 = classes ? sum / classes : 0.0;
}
