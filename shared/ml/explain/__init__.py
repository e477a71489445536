"""Explanations of a fitted model: permutation importance and SHAP values.

`shap.explain_shap` dispatches: exact TreeSHAP for tree models, a structure-aware explainer for
nnetsauce models over trees, exact enumeration for few features, antithetic sampling otherwise.
"""
