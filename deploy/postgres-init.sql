-- One database per bounded context: services never share one.
CREATE DATABASE polyshop_user;
CREATE DATABASE polyshop_catalog;
CREATE DATABASE polyshop_inventory;
CREATE DATABASE polyshop_order;
CREATE DATABASE polyshop_payment;
CREATE DATABASE polyshop_notification;
