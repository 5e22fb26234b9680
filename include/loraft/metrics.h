/* metrics.h: evaluation metrics for sequence classification, computed from predicted and
 * true label ids. Matches scikit-learn's accuracy_score and f1_score so numbers compare
 * with HF Trainer + `evaluate` runs. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ClassMetrics {
    double loss;     /* the mean loss passed in */
    double accuracy; /* fraction of pred[i] == label[i]; 0 when n == 0 */
    double f1;       /* see metrics_classification */
    int n;           /* examples counted */
    /* preference pairs (dpo, reward): accuracy is the share of pairs whose chosen reward is
     * above the rejected one, and these the mean rewards (DPO's implicit ones) */
    double chosen_reward, rejected_reward;
    /* rloo: the reward model's mean score of the completions sampled for the held-out prompts
     * (loss 0), and their mean length */
    double reward, completion_length;
} ClassMetrics;

/* pred, label: [n] class ids in [0, num_labels).
 * f1, binary (num_labels == 2): F1 of class 1, like sklearn f1_score(pos_label=1).
 * f1, multiclass: macro F1 over the classes that occur in label or pred, like sklearn
 * f1_score(average="macro") without a labels= argument; a class that never occurs is not
 * averaged. Where a class's F1 is undefined (no true, no predicted example of it, the
 * binary case only) it is 0, sklearn's zero_division default. Ids outside
 * [0, num_labels) count as wrong for accuracy and belong to no class. */
void metrics_classification(const int *pred, const int *label, int n, int num_labels,
                            double mean_loss, ClassMetrics *out);

#ifdef __cplusplus
}
#endif
